"""SRResNet-MLE: the Gaussian NLL (attenuation loss), eq. (3).

At the paper's scale (``configs/base.py``); the loss is the ``'mle'`` row
of ``configs/variants.py``."""

from configs import base
from configs import variants


def get_config():
  return variants.apply(base.get_config(), 'mle')
