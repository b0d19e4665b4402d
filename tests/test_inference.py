"""Tiled inference equals untiled inference, and the halo it relies on (the
receptive radius) is both sufficient and necessary."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import base as base_config
from configs import demo as demo_config
from gramjax.inference import predictor as inference
from gramjax import models
from gramjax.state import train_state as state_lib


def small_config(scale, batch_norm):
  c = demo_config.get_config()
  c.model.scale = scale
  c.model.num_blocks = 2
  c.model.channels = 8
  c.model.batch_norm = batch_norm
  return c


def perturbed(tree, seed, scale=0.2):
  """Adds noise to every leaf so that every weight (including the zero-
  initialised log-variance head) matters."""
  leaves, treedef = jax.tree.flatten(tree)
  keys = jax.random.split(jax.random.key(seed), max(len(leaves), 1))
  return jax.tree.unflatten(treedef, [
      x + scale * jax.random.normal(k, x.shape, x.dtype)
      for x, k in zip(leaves, keys)])


def make_predictor(scale, batch_norm, seed=0):
  config = small_config(scale, batch_norm)
  recipe = state_lib.build(config)
  graphdef, model_state = recipe.graphdef, recipe.model_state
  params = perturbed(recipe.params, seed)
  if batch_norm:
    # Running statistics away from (0, 1); variances stay positive.
    def is_var(path):
      return any(getattr(k, 'key', None) == 'var' for k in path)
    model_state = jax.tree_util.tree_map_with_path(
        lambda path, x: jnp.abs(x) + 0.5 if is_var(path) else x,
        perturbed(model_state, seed + 1, 0.3))
  return inference.Predictor(config, graphdef, params, model_state)


def lr_image(h=37, w=29, seed=0):
  rng = np.random.default_rng(seed)
  return rng.uniform(0, 1, (h, w, 3)).astype(np.float32)


@pytest.fixture(scope='module', params=[(4, False), (3, False), (4, True),
                                        (3, True)],
                ids=['x4', 'x3', 'x4-bn', 'x3-bn'])
def predictor(request):
  scale, bn = request.param
  return make_predictor(scale, bn)


def test_tiled_equals_untiled(predictor):
  lr = lr_image()
  whole_mean, whole_log_var = predictor(lr, tile=0)
  s = predictor.scale
  assert whole_mean.shape == (37 * s, 29 * s, 3)
  assert whole_log_var.std() > 1e-3  # The heads are not constant.
  mean, log_var = predictor(lr, tile=8)
  # Equal up to float32 rounding (other shapes, other summation orders):
  # a few ulps of the largest value.
  for got, want in ((mean, whole_mean), (log_var, whole_log_var)):
    assert np.max(np.abs(got - want)) < 1e-5 * max(1.0, np.abs(want).max())
  # Strip by strip (what predict writes): the same rows, top to bottom.
  calls = []
  strips = list(predictor.strips(lr, tile=8, on_tile=calls.append))
  assert [(r0, r1) for r0, r1, _, _ in strips] == [
      (y * s, min(y + 8, 37) * s) for y in range(0, 37, 8)]
  np.testing.assert_array_equal(np.concatenate([m for *_, m, _ in strips]),
                                mean)
  assert len(calls) == inference.count_tiles(lr.shape, 8) == 5 * 4


def test_a_halo_below_the_receptive_radius_breaks_tiling(predictor,
                                                         monkeypatch):
  lr = lr_image()
  whole_mean, _ = predictor(lr, tile=0)
  monkeypatch.setattr(models, 'receptive_radius', lambda m: 3)
  assert predictor.radius == 3
  mean, _ = predictor(lr, tile=8)
  assert np.max(np.abs(mean - whole_mean)) > 1e-3


@pytest.mark.parametrize('scale', [3, 4])
def test_receptive_field_is_within_the_radius(scale):
  """Gradient of one output pixel (both heads) w.r.t. the LR input: nonzero
  only within ``receptive_radius`` LR pixels of the pixel it lies in, and
  reaching close to it (the bound is not loose)."""
  p = make_predictor(scale, False)
  model = nnx.merge(p.graphdef, p.params, p.model_state)
  size = 2 * p.radius + 9
  lr = jnp.asarray(lr_image(size, size))
  y = x = (size // 2) * scale + scale // 2           # An HR pixel.

  def out(lr):
    mean, log_var = model(lr[None], train=False)
    return jnp.sum(mean[0, y, x]) + jnp.sum(log_var[0, y, x])

  grad = np.abs(np.asarray(jax.grad(out)(lr))).sum(-1)
  rows, cols = np.nonzero(grad)
  reach = max(np.abs(rows - y // scale).max(), np.abs(cols - x // scale).max())
  assert reach <= p.radius
  assert reach >= p.radius - 2


def test_receptive_radius_of_the_paper_model():
  m = base_config.get_config().model  # x4, 16 blocks, 9x9 first and heads.
  by_hand = (4            # first 9x9 conv
             + 2 * 16     # two 3x3 convs per residual block
             + 1          # trunk 3x3
             + 1          # upsampling conv at LR resolution
             + 0.5        # upsampling conv at 2x
             + 4 / 4)     # 9x9 heads at HR (4 HR px = 1 LR px)
  assert by_hand == 39.5
  assert models.receptive_radius(m) == math.ceil(by_hand) + 1 == 41
  d = demo_config.get_config().model  # 4 blocks, 3x3 heads, shuffle blur.
  assert d.shuffle_blur
  blurs = 2 / 4           # The outputs' 5-tap blur: 2 HR px.
  assert models.receptive_radius(d) == math.ceil(4 + 8 + 1 + 1.5 + 1 / 4 +
                                                    blurs) + 1 == 17
  d.shuffle_blur = False
  assert models.receptive_radius(d) == math.ceil(4 + 8 + 1 + 1.5 +
                                                    1 / 4) + 1 == 16


# ------------------------------------------------------ loading a workdir --

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """A workdir with checkpoints at steps 2 and 4."""
  from gramjax.training import loop as train  # pylint: disable=g-import-not-at-top
  c = demo_config.get_config()
  c.total_steps, c.log_every, c.checkpoint_every = 4, 4, 2
  c.tensorboard = False
  c.model.num_blocks, c.model.channels = 1, 8
  c.data.crop_size, c.batch_size, c.data.sample_images = 32, 2, ''
  wd = tmp_path_factory.mktemp('inference_model')
  train.train_and_evaluate(c, wd)
  return wd


def test_latest_step_and_config_of_a_workdir(trained):
  assert inference.latest_step(trained) == 4
  config = inference.workdir_config(trained)
  assert config.model.channels == 8 and config.total_steps == 4
  assert inference.workdir_config(trained, 2).model.num_blocks == 1
  with pytest.raises(inference.ModelError) as e:
    inference.workdir_config(trained, 3)
  assert (e.value.what, e.value.value) == ('step', 3)
  assert str(e.value).startswith('step 3: not in ')
  with pytest.raises(inference.ModelError, match='no such folder'):
    inference.latest_step(trained / 'nope')


def test_config_file_loads_a_config_module():
  config, module = inference.config_file('configs/cpu_scale.py', 'gram')
  assert config.loss.name == 'gram' and 'gram' in module.VARIANTS
  config, _ = inference.config_file('configs/demo.py')
  assert config.model.scale == 4
  with pytest.raises(inference.ModelError, match='no such file'):
    inference.config_file('configs/nope.py')


def test_mean_only_ignores_the_variance_head(trained):
  full = inference.load(trained)
  assert full.predicts_uncertainty and full.step == 4
  for mean_only in (inference.load(trained, 2, mean_only=True),
                    full.without_uncertainty()):
    assert not mean_only.predicts_uncertainty
  lr = lr_image(9, 11)
  np.testing.assert_array_equal(full.without_uncertainty()(lr)[0],
                                full(lr)[0])


def test_errors_name_no_flags(trained, tmp_path):
  cases = [lambda: inference.load(tmp_path / 'nope'),
           lambda: inference.load(tmp_path),
           lambda: inference.load(trained, 99),
           lambda: inference.parse_step('x'),
           lambda: inference.resolve_model(None, str(tmp_path), None)]
  for case in cases:
    with pytest.raises(inference.ModelError) as e:
      case()
    assert '--' not in str(e.value), str(e.value)
