"""Loss-rescaling ablation, eq. (5): sigmoid(s) * NLL, differentiated."""

from configs import base


def get_config():
  c = base.get_config()
  c.loss.name = 'loss_rescale'
  c.loss.options = {'units': '[-1,1]'}
  return c
