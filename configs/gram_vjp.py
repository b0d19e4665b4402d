"""SRResNet-GRAM with the rescaling written as a custom VJP (same gradients
as gram.py; the logged loss is the unmasked NLL)."""

from configs import base


def get_config():
  c = base.get_config()
  c.loss.name = 'gram_vjp'
  c.loss.options = {'units': '[-1,1]'}
  return c
