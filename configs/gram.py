"""SRResNet-GRAM: gradient rescaling attention, eq. (4) (the paper's method)."""

from configs import base


def get_config():
  c = base.get_config()
  c.loss.name = 'gram'
  c.loss.options = {'units': '[-1,1]'}  # Pixel range of sigmoid(s).
  return c
