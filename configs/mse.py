"""SRResNet* baseline: MSE, eq. (1). The log-variance head is untrained.

At the paper's scale (``configs/base.py``); the loss is the ``'mse'`` row
of ``configs/variants.py``."""

from configs import base
from configs import variants


def get_config():
  return variants.apply(base.get_config(), 'mse')
