"""Per-pixel training losses for heteroscedastic super-resolution.

Every loss has the signature ``fn(mean, log_var, target, **options) -> map``:
``mean``, ``log_var`` and ``target`` are NHWC arrays of one shape and the
result is the per-pixel loss map of that same shape; the caller averages it.

Units: ``mean`` and ``target`` are in the model's HR pixel range [-1, 1] (the
paper's, section IV-B); ``log_var`` is ``s = log sigma^2`` with sigma in those
same units. Equation numbers refer to Lee & Chung, "Gradient Rescaling
Attention Model for Data Uncertainty Estimation in Single Image Super
Resolution" (ICMLA 2019).

Adding a loss takes a few lines::

    @losses.register('my_loss')
    def my_loss(mean, log_var, target, *, weight=1.0):
        return weight * jnp.abs(target - mean)

and ``--config.loss.name=my_loss``; ``config.loss.options`` is passed to it as
keyword arguments.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Mapping, Protocol

import jax
import jax.numpy as jnp


class PixelLoss(Protocol):

  def __call__(self, mean: jax.Array, log_var: jax.Array, target: jax.Array,
               **options: Any) -> jax.Array:
    ...


# How many units of the named pixel range one model unit spans. The model's
# range [-1, 1] maps onto [0, R] by x -> (x + 1) * R / 2, so a standard
# deviation scales by f = R / 2 and log_var shifts by 2 * log(f).
PIXEL_UNITS: dict[str, float] = {
    '[-1,1]': 1.0,
    '[0,1]': 0.5,
    '[0,255]': 127.5,
}


def units_scale(units: str | float) -> float:
  """Returns how many ``units`` one model pixel unit ([-1, 1] range) spans."""
  if isinstance(units, str):
    key = units.replace(' ', '')
    if key not in PIXEL_UNITS:
      raise ValueError(f'unknown pixel units {units!r}; expected one of '
                       f'{sorted(PIXEL_UNITS)} or a positive number')
    return PIXEL_UNITS[key]
  if not units > 0:
    raise ValueError(f'pixel units scale must be positive, got {units!r}')
  return float(units)


def attention_mask(log_var: jax.Array, units: str | float = '[-1,1]',
                   mask_fn: Callable[[jax.Array], jax.Array] = jax.nn.sigmoid
                   ) -> jax.Array:
  """The GRAM attention mask Lambda = sigmoid(s) (section III-B).

  sigmoid(s) = sigma^2 / (1 + sigma^2) depends on the units of sigma, so ``s``
  is first converted from model units ([-1, 1]) to ``units``:
  ``s_units = s + 2 * log(scale)``. The paper states [-1, 1]; the official
  code's first version effectively used [0, 255] (s offset by ~+9.7).
  """
  return mask_fn(log_var + 2.0 * math.log(units_scale(units)))


def mse(mean, log_var, target):
  """Eq. (1): ``(y - mu)**2`` per pixel, in [-1, 1] units squared.

  ``log_var`` is ignored (the SRResNet baseline).
  """
  del log_var
  return jnp.square(target - mean)


def nll(mean, log_var, target):
  """Eq. (3), the Gaussian negative log-likelihood without its constant.

  ``0.5 * exp(-s) * (y - mu)**2 + 0.5 * s`` in nats per pixel (the NLL of y
  under N(mu, exp(s)) minus 0.5*log(2*pi)), with y, mu, sigma in [-1, 1]
  units. The attenuation loss the paper calls L_MLE.
  """
  return 0.5 * jnp.exp(-log_var) * jnp.square(target - mean) + 0.5 * log_var


def gram(mean, log_var, target, *, units: str | float = '[-1,1]',
         mask_fn: Callable[[jax.Array], jax.Array] = jax.nn.sigmoid):
  """Eq. (4), GRAM: ``stop_gradient(sigmoid(s)) * nll`` per pixel.

  The gradient of the NLL of each pixel is rescaled by the attention mask
  Lambda = sigmoid(s), which is itself never differentiated:
  d/dmu = Lambda * exp(-s) * (mu - y), d/ds = Lambda * 0.5 * (1 - exp(-s) *
  (y - mu)**2). The value is the masked NLL (nats per pixel, weighted).
  ``units`` selects the pixel range in which sigmoid(s) is computed (see
  ``attention_mask``); ``mask_fn`` replaces the sigmoid (e.g. for ablations).
  """
  mask = jax.lax.stop_gradient(attention_mask(log_var, units, mask_fn))
  return mask * nll(mean, log_var, target)


@jax.custom_vjp
def scale_gradient(x: jax.Array, scale: jax.Array) -> jax.Array:
  """Identity on ``x`` whose backward pass multiplies the cotangent by
  ``scale``; ``scale`` receives a zero cotangent (it is never differentiated).
  """
  del scale
  return x


def _scale_gradient_fwd(x, scale):
  return x, scale


def _scale_gradient_bwd(scale, g):
  return g * scale, jnp.zeros_like(scale)


scale_gradient.defvjp(_scale_gradient_fwd, _scale_gradient_bwd)


def gram_vjp(mean, log_var, target, *, units: str | float = '[-1,1]',
             mask_fn: Callable[[jax.Array], jax.Array] = jax.nn.sigmoid):
  """Eq. (4) written literally as gradient rescaling, with ``jax.custom_vjp``.

  Forward value: the plain NLL of eq. (3) (NOT multiplied by the mask), so the
  logged loss is L_MLE. Backward: the per-pixel cotangent of the NLL is
  multiplied by Lambda = sigmoid(s), which is not differentiated. Its
  gradients therefore equal ``gram``'s exactly; only the reported value
  differs.
  """
  mask = attention_mask(log_var, units, mask_fn)
  return scale_gradient(nll(mean, log_var, target), mask)


def loss_rescale(mean, log_var, target, *, units: str | float = '[-1,1]'):
  """Eq. (5), the loss-rescaling ablation: ``sigmoid(s) * nll``.

  Unlike GRAM, sigmoid(s) IS differentiated, so d/ds gains the term
  sigmoid'(s) * nll and the variance estimate is biased (section III-C).
  """
  return attention_mask(log_var, units) * nll(mean, log_var, target)


def beta_nll(mean, log_var, target, *, beta: float = 0.5):
  """beta-NLL (Seitzer et al., ICLR 2022): ``stop_gradient(exp(s)**beta) * nll``.

  beta = 0 is the NLL; beta = 1 gives the MSE gradient for mu. Same units as
  ``nll`` times sigma^(2*beta) in [-1, 1] units.
  """
  weight = jax.lax.stop_gradient(jnp.exp(beta * log_var))
  return weight * nll(mean, log_var, target)


def faithful(mean, log_var, target):
  """Faithful heteroscedastic regression (Stirn et al., AISTATS 2023):
  ``(y - mu)**2 + nll(stop_gradient(mu), s)``.

  The mean gets exactly the MSE's gradient 2 (mu - y), whatever s; s gets
  the NLL's, 0.5 (1 - exp(-s) (y - mu)**2). Faithful only with
  ``config.model.log_var_stop_gradient`` (the log-variance head then sends
  no gradient into the shared trunk, so the mean is what MSE would learn).
  Value: MSE in [-1, 1] units squared plus NLL in nats per pixel.
  """
  return (jnp.square(target - mean)
          + nll(jax.lax.stop_gradient(mean), log_var, target))


LOSSES: dict[str, PixelLoss] = {}


def register(name: str) -> Callable[[PixelLoss], PixelLoss]:
  """Decorator that makes a loss available as ``config.loss.name = name``."""

  def wrap(fn: PixelLoss) -> PixelLoss:
    if name in LOSSES and LOSSES[name] is not fn:
      raise ValueError(f'a loss named {name!r} is already registered')
    LOSSES[name] = fn
    return fn

  return wrap


for _name, _fn in [('mse', mse), ('nll', nll), ('mle', nll), ('gram', gram),
                   ('gram_vjp', gram_vjp), ('loss_rescale', loss_rescale),
                   ('beta_nll', beta_nll), ('faithful', faithful)]:
  register(_name)(_fn)


def get(name: str) -> PixelLoss:
  if name not in LOSSES:
    raise KeyError(f'{name!r} is not a registered loss; choose one of '
                   f'{sorted(LOSSES)}')
  return LOSSES[name]


def clip_log_var(log_var: jax.Array, clip: tuple[float, ...] | None):
  """Clamps s to ``clip = (lo, hi)`` in [-1, 1] units; ``()``/None: no clamp.

  Like the official code's ``K.clip(s, -10, 10)``: values outside get no
  gradient, which stops a run from diverging through exp(-s).
  """
  if not clip:
    return log_var
  if len(clip) != 2 or not clip[0] < clip[1]:
    raise ValueError(f'log_var_clip must be () or (lo, hi) with lo < hi, '
                     f'got {tuple(clip)!r}')
  return jnp.clip(log_var, clip[0], clip[1])


def accepted_options(name: str) -> list[str] | None:
  """The keyword options of loss ``name``; None where it takes any."""
  params = inspect.signature(get(name)).parameters
  if any(p.kind == p.VAR_KEYWORD for p in params.values()):
    return None
  return [n for n, p in params.items() if p.kind == p.KEYWORD_ONLY]


def check_options(name: str, options: Mapping[str, Any]) -> None:
  """Raises ``ValueError`` unless ``options`` are keywords that loss
  ``name`` takes (its pixel units, if given, known): before jit, not in it."""
  accepted = accepted_options(name)
  unknown = [k for k in options if accepted is not None and k not in accepted]
  if unknown:
    raise ValueError(f'{unknown[0]} is not an option of loss {name!r}; it '
                     f'accepts {accepted or "no options"}')
  if 'units' in options:
    units_scale(options['units'])


def make_pixel_loss(name: str, options: Mapping[str, Any] | None = None,
                    log_var_clip: tuple[float, ...] | None = ()
                    ) -> Callable[[jax.Array, jax.Array, jax.Array], jax.Array]:
  """Binds a registered loss to its options; validates them up front.

  Returns ``fn(mean, log_var, target) -> per-pixel loss map``, with ``s``
  clamped by ``log_var_clip`` first.
  """
  fn = get(name)
  options = dict(options or {})
  check_options(name, options)
  clip_log_var(jnp.zeros(()), log_var_clip)

  def pixel_loss(mean, log_var, target):
    return fn(mean, clip_log_var(log_var, log_var_clip), target, **options)

  return pixel_loss
