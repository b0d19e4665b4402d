"""SRResNet-GRAM: gradient rescaling attention, eq. (4) (the paper's method).

At the paper's scale (``configs/base.py``); the loss is the ``'gram'`` row
of ``configs/variants.py``."""

from configs import base
from configs import variants


def get_config():
  return variants.apply(base.get_config(), 'gram')
