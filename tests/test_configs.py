"""configs/: every experiment is the shared base plus rows of one table."""

import importlib

import pytest

from configs import base
from configs import cpu_scale
from configs import variants
from gramjax.core import losses
from gramjax.core.errors import UserError
from gramjax.state import config as config_lib
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


# ----------------------------------------------- gramjax.state.config --

def config_files():
  for path in sorted((REPO / 'configs').glob('*.py')):
    module = importlib.import_module(f'configs.{path.stem}')
    if hasattr(module, 'get_config'):
      yield path.stem, module


def test_every_experiment_config_passes_validation():
  for name, module in config_files():
    config_lib.validate(module.get_config())
  for variant in cpu_scale.STUDY:
    config_lib.validate(cpu_scale.get_config(variant))


def with_value(key, value):
  c = base.get_config()
  *parents, leaf = key.split('.')
  node = c
  for name in parents:
    node = node[name]
  with c.unlocked():
    node[leaf] = value
  return c


@pytest.mark.parametrize('key,value,message', [
    ('seed', 0, None),
    ('total_steps', -1, 'config.total_steps=-1: must be >= 0'),
    ('keep_checkpoints', 0, 'config.keep_checkpoints=0: must be >= 1'),
    ('batch_size', 0, 'config.batch_size=0: must be >= 1'),
    ('steps_per_dispatch', -2, 'config.steps_per_dispatch=-2: must be >= 0'),
    ('cpu_devices', -1, 'config.cpu_devices=-1: must be >= 0'),
    ('ema_decay', 1.0, 'config.ema_decay=1.0: must be in [0, 1)'),
    ('model.name', 'edsr', "config.model.name='edsr': use 'srresnet'"),
    ('model.scale', 5, 'config.model.scale=5: use one of [2, 3, 4, 8]'),
    ('model.activation', 'relu',
     "config.model.activation='relu': use one of leaky_relu, prelu"),
    ('model.mean_activation', 'sigmoid',
     "config.model.mean_activation='sigmoid': use one of none, tanh"),
    ('model.compute_dtype', 'int8', "config.model.compute_dtype='int8'"),
    ('model.channels', 0, 'config.model.channels=0: must be >= 1'),
    ('loss.options', {'units': '[0,2]'},
     "config.loss.options.units='[0,2]': unknown pixel units"),
    ('loss.log_var_clip', (3.0, 1.0),
     'config.loss.log_var_clip=(3.0, 1.0): give () or (lo, hi)'),
    ('loss.name', 'faithful',
     "config.loss.name='faithful': needs config.model.log_var_stop_gradient"),
    ('optimizer.grad_clip_norm', -1.0,
     'config.optimizer.grad_clip_norm=-1.0: must be >= 0'),
    ('data.lr_source', 'files',
     "config.data.lr_source='files': needs config.data.train_lr_dir"),
    ('data.holdout', -1, 'config.data.holdout=-1: must be >= 0'),
    ('data.num_threads', 0, 'config.data.num_threads=0: must be >= 1'),
    ('evals', {'div2k': {'folder': 'x', 'every': 5, 'tiles': 64}},
     'config.evals.div2k.tiles=64: not a key of a validation set; use '
     'folder, every, convention, max_images, tile'),
    ('evals', {'div2k': {'folder': '', 'every': 5}},
     "config.evals.div2k.folder='': give a folder"),
    ('evals', {'div2k': {'folder': 'x', 'every': 5, 'convention': 'y'}},
     "config.evals.div2k.convention='y': use one of standard, official_code"),
    ('evals', {'div2k': {'folder': 'x', 'every': 5, 'tile': -1}},
     'config.evals.div2k.tile=-1: must be >= 0'),
    ('best_metric', 'val/div2k/lpips',
     "config.best_metric='val/div2k/lpips': give '' or val/<a key of "
     'config.evals>/<metric> with metric one of psnr, ssim, nll, ause, '
     'coverage_90 (config.evals: div2k)'),
    ('best_mode', 'up', "config.best_mode='up': use one of max, min"),
])
def test_a_bad_value_is_named_by_its_key(key, value, message):
  config = with_value(key, value)
  if message is None:
    config_lib.validate(config)
    return
  with pytest.raises(UserError) as info:
    config_lib.validate(config)
  assert str(info.value).startswith(message), str(info.value)


def test_eval_specs_fill_in_the_defaults():
  c = with_value('evals', {'a': {'folder': 'x', 'every': 7}})
  assert config_lib.eval_specs(c) == {'a': {
      'folder': 'x', 'every': 7, **{k: v for k, v in
                                     config_lib.EVALUATOR_KEYS.items()
                                     if v is not None}}}
