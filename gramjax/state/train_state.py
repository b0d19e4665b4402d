"""The train state and how it is built from a config: the model (split once
into a static graph and pytrees), the learning-rate schedule and the
optimizer, each made exactly once (``build``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from gramjax import models
from gramjax.core.errors import UserError


@flax.struct.dataclass
class TrainState:
  """Everything the step needs; a pytree of arrays (checkpointed whole)."""
  step: jax.Array
  params: nnx.State
  model_state: nnx.State  # BatchNorm statistics (empty without BN).
  opt_state: optax.OptState
  # NaN/Inf guard: steps whose loss or gradients were not finite were not
  # applied; how many, and the first (-1: none).
  bad_steps: jax.Array
  first_bad_step: jax.Array
  # Exponential moving average of ``params`` (``config.ema_decay`` > 0),
  # else None (no leaves: nothing stored).
  ema_params: nnx.State | None = None


def make_schedule(opt_config) -> optax.Schedule:
  """Piecewise-constant learning rate: ``lr_values[i]`` from
  ``lr_boundaries[i-1]`` on (paper: 1e-4, then 1e-5 from step 2e5); one
  value more than boundaries (``state.config`` checks a config's)."""
  values = [float(v) for v in opt_config.lr_values]
  bounds = [int(b) for b in opt_config.lr_boundaries]
  return optax.join_schedules(
      [optax.constant_schedule(v) for v in values], bounds)


def make_optimizer(opt_config, schedule: optax.Schedule
                   ) -> optax.GradientTransformation:
  """Adam(b1, b2) on ``schedule``; optional global-norm gradient clipping."""
  tx = optax.adam(schedule, b1=opt_config.b1, b2=opt_config.b2,
                  eps=opt_config.eps)
  if opt_config.grad_clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(opt_config.grad_clip_norm), tx)
  return tx


@dataclasses.dataclass(frozen=True)
class Recipe:
  """A config's model and optimizer, built once.

  ``graphdef`` is the model's static structure; ``params`` and
  ``model_state`` its initial pytrees; ``tx`` the optimizer that both
  initialises and updates ``opt_state``; ``schedule`` its learning rate.
  """
  graphdef: nnx.GraphDef
  params: nnx.State
  model_state: nnx.State
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  ema_decay: float = 0.0

  def init(self, params, model_state) -> TrainState:
    """Pure: the step-0 state (jit it, or ``jax.eval_shape`` it); the EMA
    starts at the initial parameters."""
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      model_state=model_state,
                      opt_state=self.tx.init(params),
                      bad_steps=jnp.zeros((), jnp.int32),
                      first_bad_step=jnp.full((), -1, jnp.int32),
                      ema_params=(jax.tree.map(jnp.copy, params)
                                  if self.ema_decay else None))

  def abstract_state(self, sharding) -> Any:
    """The state's shapes and dtypes on ``sharding``, for restoring."""
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
        jax.eval_shape(self.init, self.params, self.model_state))

  @property
  def num_params(self) -> int:
    return sum(x.size for x in jax.tree.leaves(self.params))


def update_ema(ema, params, decay: float):
  """``decay * ema + (1 - decay) * params``, leaf by leaf (pure)."""
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


def build(config) -> Recipe:
  """The model of ``config.model`` (seeded by ``config.seed``), the
  optimizer of ``config.optimizer`` and the EMA of ``config.ema_decay``."""
  decay = float(config.get('ema_decay', 0.0))
  try:
    model = models.build_model(config.model, seed=config.seed)
  except ValueError as e:
    raise UserError(f'config.model.{e}') from e  # e names the argument.
  graphdef, params, model_state = nnx.split(model, nnx.Param, nnx.BatchStat)
  schedule = make_schedule(config.optimizer)
  return Recipe(graphdef, params, model_state,
                make_optimizer(config.optimizer, schedule), schedule, decay)
