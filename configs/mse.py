"""SRResNet* baseline: MSE, eq. (1). The log-variance head is untrained."""

from configs import base


def get_config():
  c = base.get_config()
  c.loss.name = 'mse'
  c.loss.options = {}
  return c
