"""Faithful heteroscedastic regression (Stirn et al., AISTATS 2023): the
mean trained with the MSE, the log-variance head with the NLL on a
stop-gradient copy of the trunk's features, so the mean is what MSE
would learn."""

from configs import base


def get_config():
  c = base.get_config()
  c.loss.name = 'faithful'
  c.loss.options = {}
  c.model.log_var_stop_gradient = True
  return c
