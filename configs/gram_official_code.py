"""GRAM with the settings the official Keras code used where they differ from
the paper's text (github.com/changwoolee/gradient-rescaling-attention-model):
BatchNorm + PReLU, tanh mean, 192 px HR crops, Adam's default betas
(0.9, 0.999), lr halved every 2e5 steps, log-variance clipped to [-10, 10]
([-1, 1] units)."""

from configs import base
from configs import variants


def get_config():
  c = variants.apply(base.get_config(), 'gram')
  c.loss.log_var_clip = (-10.0, 10.0)
  c.model.batch_norm = True
  c.model.activation = 'prelu'
  c.model.mean_activation = 'tanh'
  c.data.crop_size = 192
  c.optimizer.b2 = 0.999
  c.optimizer.lr_values = (1e-4, 5e-5)
  c.optimizer.lr_boundaries = (200_000,)
  return c
