"""SRResNet-GRAM with the rescaling written as a custom VJP (same gradients
as gram.py; the logged loss is the unmasked NLL).

At the paper's scale (``configs/base.py``); the loss is the ``'gram_vjp'`` row
of ``configs/variants.py``."""

from configs import base
from configs import variants


def get_config():
  return variants.apply(base.get_config(), 'gram_vjp')
