"""SRResNet-MLE: the Gaussian NLL (attenuation loss), eq. (3)."""

from configs import base


def get_config():
  c = base.get_config()
  c.loss.name = 'nll'
  c.loss.options = {}
  return c
