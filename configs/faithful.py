"""Faithful heteroscedastic regression (Stirn et al., AISTATS 2023): the
mean trained with the MSE, the log-variance head with the NLL on a
stop-gradient copy of the trunk's features, so the mean is what MSE
would learn.

At the paper's scale (``configs/base.py``); the loss is the ``'faithful'`` row
of ``configs/variants.py``."""

from configs import base
from configs import variants


def get_config():
  return variants.apply(base.get_config(), 'faithful')
