"""Loss-rescaling ablation, eq. (5): sigmoid(s) * NLL, differentiated.

At the paper's scale (``configs/base.py``); the loss is the ``'loss_rescale'`` row
of ``configs/variants.py``."""

from configs import base
from configs import variants


def get_config():
  return variants.apply(base.get_config(), 'loss_rescale')
