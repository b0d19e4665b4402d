"""beta-NLL (Seitzer et al. 2022): stop_gradient(sigma^(2 beta)) * NLL.

At the paper's scale (``configs/base.py``); the loss is the ``'beta_nll'`` row
of ``configs/variants.py``."""

from configs import base
from configs import variants


def get_config():
  return variants.apply(base.get_config(), 'beta_nll')
