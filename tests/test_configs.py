"""configs/: every experiment is the shared base plus rows of one table."""

import importlib

import pytest

from configs import base
from configs import cpu_scale
from configs import variants
from gramjax.core import losses
from tests.conftest import REPO

PER_LOSS = {'mse': 'mse', 'mle': 'mle', 'gram': 'gram',
            'gram_vjp': 'gram_vjp', 'beta_nll': 'beta_nll',
            'faithful': 'faithful', 'loss_rescale': 'loss_rescale'}


@pytest.mark.parametrize('module, variant', sorted(PER_LOSS.items()))
def test_a_per_loss_file_is_the_base_with_one_row(module, variant):
  config = importlib.import_module(f'configs.{module}').get_config()
  expected = base.get_config()
  for key, value in variants.VARIANTS[variant].items():
    node = expected
    *parents, leaf = key.split('.')
    for name in parents:
      node = node[name]
    node[leaf] = value
  assert config.to_dict() == expected.to_dict()
  assert config.loss.name == variants.VARIANTS[variant]['loss.name']


def test_every_config_file_loads_and_names_a_known_loss():
  for path in sorted((REPO / 'configs').glob('*.py')):
    module = importlib.import_module(f'configs.{path.stem}')
    if not hasattr(module, 'get_config'):
      continue
    assert module.get_config().loss.name in losses.LOSSES, path.name


def test_the_study_is_rows_of_the_table_at_cpu_scale():
  assert set(cpu_scale.STUDY) <= set(variants.VARIANTS)
  c = cpu_scale.get_config('gram_warmup')
  assert (c.loss.name, c.loss.mse_warmup) == ('gram', variants.WARMUP_STEPS)
  assert c.model.num_blocks == 8           # The scale, not the base's 16.
  c = cpu_scale.get_config('faithful')
  assert c.model.log_var_stop_gradient


def test_an_unknown_variant_names_itself_and_the_choices():
  with pytest.raises(ValueError, match=r"cpu_scale.py:gramm: unknown loss "
                                       r"variant 'gramm'; choose one of mse"):
    cpu_scale.get_config('gramm')
