"""The training step: a pure jitted ``train_step(state, batch) -> (state,
metrics)`` and ``make_dispatch``, which runs several of them in one call.

Pixel ranges: batches hold HR crops, uint8 [0, 255]. On the device they
become the target in [-1, 1] and the LR input in [0, 1] (MATLAB bicubic
downscaling, optionally rounded to 8-bit levels like a saved LR file), as in
section IV-B of the paper (``gramjax.core.pixels.training_pair``).

The step itself is deterministic; its NaN/Inf guard runs on the device.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from gramjax.core import losses
from gramjax.core import pixels
from gramjax.state import train_state as state_lib
from gramjax.state.train_state import TrainState


def batch_psnr(mean: jax.Array, target: jax.Array) -> jax.Array:
  """PSNR (dB) of the mean on the batch, both in [-1, 1] (peak-to-peak 2),
  averaged over images; RGB, no shave (a training monitor only)."""
  mse = jnp.mean(jnp.square(jnp.clip(mean, -1, 1) - target), axis=(1, 2, 3))
  return jnp.mean(10.0 * jnp.log10(4.0 / jnp.maximum(mse, 1e-12)))


def step_metrics(loss, mean, log_var, target, attention_units) -> dict:
  """The step's monitored figures on the batch (device scalars)."""
  return {
      'loss': loss,
      'nll': jnp.mean(losses.nll(mean, log_var, target)),
      'mse': jnp.mean(losses.mse(mean, log_var, target)),
      'psnr': batch_psnr(mean, target),
      'sigma_grey': jnp.mean(jnp.exp(0.5 * log_var)) * pixels.GREY_PER_UNIT,
      'log_var': jnp.mean(log_var),
      'mask': jnp.mean(losses.attention_mask(log_var, attention_units)),
  }


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation,
                    pixel_loss: Callable, schedule: optax.Schedule, *,
                    scale: int, round_lr: bool, attention_units: str | float,
                    ema_decay: float = 0.0, mse_warmup: int = 0
                    ) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
  """Builds the pure step. ``batch['hr']``: uint8 HR crops (N, H, W, 3);
  optional ``batch['lr']``: their uint8 LR files (N, H/s, W/s, 3), else the
  LR is made on the device by MATLAB bicubic. With ``ema_decay`` the state's
  ``ema_params`` follow the applied parameters. The first ``mse_warmup``
  steps train with the MSE instead of ``pixel_loss`` (the beta-NLL code's
  ``mse_warmup``): the mean learns first, the log-variance head waits."""

  def loss_fn(params, model_state, batch, step):
    lr, target = pixels.training_pair(batch['hr'], scale, round_lr, jnp)
    if 'lr' in batch:
      lr = batch['lr'].astype(jnp.float32) / 255.0
    # Fresh Variables at this trace level: BatchNorm updates its statistics
    # in place, which NNX only allows on Variables made inside the trace.
    model_state = jax.tree.map(lambda x: x, model_state)
    model = nnx.merge(graphdef, params, model_state)
    mean, log_var = model(lr, train=True)
    new_model_state = nnx.state(model, nnx.BatchStat)
    loss_map = pixel_loss(mean, log_var, target)
    if mse_warmup:
      loss_map = jnp.where(step < mse_warmup,
                           losses.mse(mean, log_var, target), loss_map)
    loss = jnp.mean(loss_map)
    return loss, (mean, log_var, target, new_model_state)

  def train_step(state: TrainState, batch: dict[str, jax.Array]):
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, aux), grads = grad_fn(state.params, state.model_state, batch,
                                 state.step)
    mean, log_var, target, new_model_state = aux
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    # The NaN/Inf guard, on device (no host sync): a step whose loss or
    # gradients are not finite changes nothing but the counters.
    finite = jnp.isfinite(loss) & jnp.all(jnp.stack(
        [jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
    keep = lambda new, old: jax.tree.map(
        lambda n, o: jnp.where(finite, n, o), new, old)
    ema = state.ema_params
    if ema is not None:
      ema = keep(state_lib.update_ema(ema, params, ema_decay), ema)
    new_state = state.replace(
        step=state.step + 1, params=keep(params, state.params), ema_params=ema,
        model_state=keep(new_model_state, state.model_state),
        opt_state=keep(opt_state, state.opt_state),
        bad_steps=state.bad_steps + jnp.where(finite, 0, 1),
        first_bad_step=jnp.where(
            ~finite & (state.first_bad_step < 0), state.step + 1,
            state.first_bad_step))
    metrics = step_metrics(loss, mean, jax.lax.stop_gradient(log_var),
                           target, attention_units)
    metrics['grad_norm'] = optax.tree.norm(grads)
    metrics['lr'] = schedule(state.step)
    return new_state, metrics

  return train_step


def make_dispatch(train_step: Callable, n: int, unroll: bool = False
                  ) -> Callable:
  """``n`` training steps in one call: ``lax.scan`` of ``train_step`` over
  batches stacked on a leading axis of length ``n``; the metrics come back
  summed over the ``n`` steps (on the device). ``n == 1`` is the plain step,
  its batch without the leading axis. ``unroll`` compiles the ``n`` steps
  as one straight program: XLA:CPU runs convolutions inside a loop body
  about 10x slower than outside one (measured: docs/benchmarks.md), so the
  CPU unrolls; other backends keep the loop (compile time)."""
  if n == 1:
    return train_step

  def dispatch(state: TrainState, batches: dict):
    state, metrics = jax.lax.scan(train_step, state, batches, unroll=unroll)
    return state, jax.tree.map(lambda m: jnp.sum(m, axis=0), metrics)

  return dispatch
