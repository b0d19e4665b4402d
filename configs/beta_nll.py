"""beta-NLL (Seitzer et al. 2022): stop_gradient(sigma^(2 beta)) * NLL."""

from configs import base


def get_config():
  c = base.get_config()
  c.loss.name = 'beta_nll'
  c.loss.options = {'beta': 0.5}
  return c
