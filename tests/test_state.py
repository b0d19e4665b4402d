"""The train state's recipe: schedule, optimizer and model built once."""

import jax
import numpy as np
import optax
import pytest

from configs import base as base_config
from configs import demo as demo_config
from gramjax.state import train_state as state_lib
from gramjax.core.errors import UserError


def test_schedule_is_piecewise_constant():
  c = base_config.get_config()
  schedule = state_lib.make_schedule(c.optimizer)
  assert float(schedule(0)) == pytest.approx(1e-4)
  assert float(schedule(199_999)) == pytest.approx(1e-4)
  assert float(schedule(200_000)) == pytest.approx(1e-5)
  assert float(schedule(299_999)) == pytest.approx(1e-5)


def test_one_optimizer_initialises_and_updates():
  """The state's opt_state is made by the very ``tx`` that updates it, and
  that update is Adam(b1, b2) on the schedule's rate: checked against
  optax.adam built independently."""
  c = demo_config.get_config()
  c.model.num_blocks, c.model.channels = 1, 8
  c.optimizer.grad_clip_norm = 0.0
  recipe = state_lib.build(c)
  state = recipe.init(recipe.params, recipe.model_state)
  grads = jax.tree.map(lambda p: 0.01 * jax.numpy.ones_like(p), state.params)
  updates, _ = recipe.tx.update(grads, state.opt_state, state.params)
  ref = optax.adam(c.optimizer.lr_values[0], b1=c.optimizer.b1,
                   b2=c.optimizer.b2, eps=c.optimizer.eps)
  want, _ = ref.update(grads, ref.init(state.params), state.params)
  for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(want)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
  assert jax.tree.structure(state.opt_state) == jax.tree.structure(
      recipe.tx.init(recipe.params))
  assert recipe.num_params == sum(
      x.size for x in jax.tree.leaves(recipe.params))


def test_abstract_state_matches_the_real_one():
  c = demo_config.get_config()
  c.model.num_blocks, c.model.channels = 1, 8
  recipe = state_lib.build(c)
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = recipe.abstract_state(device)
  real = recipe.init(recipe.params, recipe.model_state)
  assert [(a.shape, a.dtype) for a in jax.tree.leaves(abstract)] == [
      (r.shape, r.dtype) for r in jax.tree.leaves(real)]


def test_bad_model_key_is_a_user_error():
  c = demo_config.get_config()
  c.model.scale = 5
  with pytest.raises(UserError, match=r'^config\.model\.scale must be one '
                     r'of \[2, 3, 4, 8\], got 5$'):
    state_lib.build(c)
