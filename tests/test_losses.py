"""Tests of gramjax.core.losses against independent references.

Every check compares the code under test with something computed separately:
a hand-written numpy formula (float64) or central finite differences. The
equation numbers are those of Lee & Chung, "Gradient Rescaling Attention
Model for Data Uncertainty Estimation in Single Image Super Resolution"
(ICMLA 2019): eq. (3) is the Gaussian NLL L_MLE, section III-B eq. (4) is
GRAM (the NLL gradient rescaled by Lambda = sigmoid(s), Lambda itself not
differentiated) and section III-C eq. (5) is the loss-rescaling ablation
(Lambda multiplies the loss and IS differentiated).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gramjax.core import losses
from gramjax.models import SRResNet

SHAPE = (2, 5, 6, 3)
# sigmoid(s) is evaluated in these units: s_units = s + 2 * log(scale).
UNITS_SCALE = {'[-1,1]': 1.0, '[0,1]': 0.5, '[0,255]': 127.5}


# --------------------------------------------------------------------------
# Helpers: float64 context, inputs and the independent numpy references.
# --------------------------------------------------------------------------


def _x64_context():
  """Scoped float64 (never flips the global flag for other test files)."""
  if hasattr(jax, 'enable_x64'):
    return jax.enable_x64(True)
  from jax.experimental import enable_x64  # Older jax.
  return enable_x64()


@pytest.fixture
def x64():
  with _x64_context():
    assert jnp.zeros(()).dtype == jnp.float64
    yield


def _inputs(seed=0, shape=SHAPE, s_range=(-6.0, 3.0)):
  """(mu, s, y) as float64 numpy arrays; mu, y in [-1, 1], s spread wide."""
  rng = np.random.default_rng(seed)
  mu = rng.uniform(-1.0, 1.0, shape)
  y = rng.uniform(-1.0, 1.0, shape)
  s = rng.uniform(s_range[0], s_range[1], shape)
  return mu, s, y


def np_sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def np_nll(mu, s, y):
  """Eq. (3) per pixel without the constant, written out in numpy."""
  return 0.5 * np.exp(-s) * (y - mu) ** 2 + 0.5 * s


def np_nll_grads(mu, s, y):
  """Hand-derived d nll / d mu and d nll / d s per pixel."""
  dmu = np.exp(-s) * (mu - y)
  ds = 0.5 * (1.0 - np.exp(-s) * (y - mu) ** 2)
  return dmu, ds


def np_mask(s, scale=1.0):
  """Lambda = sigma_u^2 / (1 + sigma_u^2), sigma_u = scale * sigma (III-B)."""
  var_u = scale ** 2 * np.exp(s)
  return var_u / (1.0 + var_u)


def mean_grads(fn, mu, s, y, **options):
  """jax.grad of mean(fn(mu, s, y, **options)) w.r.t. mu and s, as numpy."""

  def objective(m, lv):
    return jnp.mean(fn(m, lv, jnp.asarray(y), **options))

  dmu, ds = jax.grad(objective, argnums=(0, 1))(jnp.asarray(mu),
                                                jnp.asarray(s))
  return np.asarray(dmu), np.asarray(ds)


def central_diff(f, x, eps=1e-6):
  """Central finite differences of the scalar f at every element of x."""
  x = np.array(x, dtype=np.float64)
  grad = np.zeros_like(x)
  for idx in np.ndindex(x.shape):
    xp, xm = x.copy(), x.copy()
    xp[idx] += eps
    xm[idx] -= eps
    grad[idx] = (f(xp) - f(xm)) / (2.0 * eps)
  return grad


TIGHT = dict(rtol=1e-10, atol=1e-14)  # float64 against float64.


# --------------------------------------------------------------------------
# 1. GRAM gradients, eq. (4).
# --------------------------------------------------------------------------


@pytest.mark.parametrize('units', ['[-1,1]', '[0,1]', '[0,255]', 127.5])
def test_gram_gradient_matches_eq4(x64, units):
  """Eq. (4): grad of mean(gram) = Lambda * grad(nll) / N, Lambda frozen.

  d/dmu = Lambda exp(-s)(mu - y)/N, d/ds = Lambda * 0.5(1 - exp(-s)(y-mu)^2)/N
  with Lambda = sigmoid(s + 2 log scale) for the chosen pixel units.
  """
  mu, s, y = _inputs(seed=1)
  n = mu.size
  scale = units if isinstance(units, float) else UNITS_SCALE[units]
  lam = np_sigmoid(s + 2.0 * math.log(scale))
  np.testing.assert_allclose(lam, np_mask(s, scale), rtol=1e-12)
  dmu, ds = mean_grads(losses.gram, mu, s, y, units=units)
  np.testing.assert_allclose(
      dmu, lam * np.exp(-s) * (mu - y) / n, **TIGHT)
  np.testing.assert_allclose(
      ds, lam * 0.5 * (1.0 - np.exp(-s) * (y - mu) ** 2) / n, **TIGHT)
  # The value is the masked NLL.
  value = np.asarray(losses.gram(mu, s, y, units=units))
  np.testing.assert_allclose(value, lam * np_nll(mu, s, y), **TIGHT)


def test_gram_gradient_float32():
  """Eq. (4) in the default float32, against the float64 numpy formula."""
  mu, s, y = _inputs(seed=2)
  n = mu.size
  f32 = lambda a: a.astype(np.float32)
  dmu, ds = mean_grads(losses.gram, f32(mu), f32(s), f32(y))
  assert dmu.dtype == np.float32
  # Reference from the float32-rounded inputs, evaluated in float64.
  mu, s, y = (f32(a).astype(np.float64) for a in (mu, s, y))
  lam = np_sigmoid(s)
  ref_dmu = lam * np.exp(-s) * (mu - y) / n
  ref_ds = lam * 0.5 * (1.0 - np.exp(-s) * (y - mu) ** 2) / n
  np.testing.assert_allclose(dmu, ref_dmu, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(ds, ref_ds, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------
# 2. gram and gram_vjp on a real SRResNet.
# --------------------------------------------------------------------------


def small_srresnet(seed, batch, lr_size, **options):
  """A 2-block SRResNet whose log-variance head has a random kernel (it
  starts at zero: constant s), so the mask varies from pixel to pixel;
  with a random (lr, hr) batch. Returns (graphdef, params, rest, lr, hr)."""
  model = SRResNet(scale=4, num_blocks=2, channels=16, log_var_init=-2.0,
                   rngs=nnx.Rngs(0), **options)
  kernel = model.log_var_head.kernel
  kernel[...] = 0.05 * jax.random.normal(jax.random.key(1), kernel.shape)
  rng = np.random.default_rng(seed)
  lr = jnp.asarray(rng.uniform(0.0, 1.0, (batch, lr_size, lr_size, 3)),
                   jnp.float32)
  hr = jnp.asarray(rng.uniform(-1.0, 1.0, (batch, 4 * lr_size,
                                           4 * lr_size, 3)), jnp.float32)
  return (*nnx.split(model, nnx.Param, ...), lr, hr)


@pytest.fixture(scope='module')
def srresnet_grads():
  """Gradients of mean(loss) w.r.t. every SRResNet parameter, per loss."""
  graphdef, params, rest, lr, hr = small_srresnet(3, 4, 12)

  def outputs(p):
    return nnx.merge(graphdef, p, rest)(lr, train=True)

  mean, log_var = outputs(params)
  out = {'mean': mean, 'log_var': log_var, 'hr': hr, 'params': params}
  for name in ('gram', 'gram_vjp', 'nll'):
    fn = losses.LOSSES[name]

    def objective(p, fn=fn):
      m, lv = outputs(p)
      return jnp.mean(fn(m, lv, hr))

    out[name] = jax.jit(jax.value_and_grad(objective))(params)
  return out


def test_srresnet_outputs_have_varying_mask(srresnet_grads):
  """Precondition of the next tests: Lambda = sigmoid(s) is not constant."""
  mean, log_var = srresnet_grads['mean'], srresnet_grads['log_var']
  assert mean.shape == log_var.shape == (4, 48, 48, 3)
  mask = np.asarray(jax.nn.sigmoid(log_var))
  assert mask.std() > 0.01, mask.std()


def test_gram_vjp_equals_gram_for_every_srresnet_parameter(srresnet_grads):
  """Eq. (4) two ways: masked loss with stop_gradient == custom-VJP rescale.

  Every parameter leaf must agree, and differ from the unmasked NLL's.
  """
  _, g_gram = srresnet_grads['gram']
  _, g_vjp = srresnet_grads['gram_vjp']
  _, g_nll = srresnet_grads['nll']
  assert (jax.tree.structure(g_gram) == jax.tree.structure(g_vjp)
          == jax.tree.structure(srresnet_grads['params']))
  leaves_gram = jax.tree.leaves(g_gram)
  leaves_vjp = jax.tree.leaves(g_vjp)
  leaves_nll = jax.tree.leaves(g_nll)
  assert len(leaves_gram) == len(leaves_vjp) == len(leaves_nll) > 10
  for a, b in zip(leaves_gram, leaves_vjp):
    a, b = np.asarray(a), np.asarray(b)
    assert np.all(np.isfinite(a))
    np.testing.assert_allclose(b, a, rtol=1e-5,
                               atol=1e-6 * np.abs(a).max() + 1e-12)
  # The mask is not a no-op: each leaf with signal differs from the NLL's.
  for a, c in zip(leaves_gram, leaves_nll):
    a, c = np.asarray(a), np.asarray(c)
    if np.abs(c).max() == 0.0:
      continue
    rel = np.abs(a - c).max() / np.abs(c).max()
    assert rel > 0.1, rel


def test_gram_vjp_forward_value_is_nll(srresnet_grads):
  """gram_vjp reports L_MLE of eq. (3); gram reports the masked NLL."""
  mean, log_var, hr = (np.asarray(srresnet_grads[k], np.float64)
                       for k in ('mean', 'log_var', 'hr'))
  v_gram, _ = srresnet_grads['gram']
  v_vjp, _ = srresnet_grads['gram_vjp']
  v_nll, _ = srresnet_grads['nll']
  ref_nll = np_nll(mean, log_var, hr).mean()
  ref_gram = (np_sigmoid(log_var) * np_nll(mean, log_var, hr)).mean()
  np.testing.assert_allclose(float(v_nll), ref_nll, rtol=1e-5)
  np.testing.assert_allclose(float(v_vjp), ref_nll, rtol=1e-5)
  np.testing.assert_allclose(float(v_gram), ref_gram, rtol=1e-5)
  assert abs(ref_gram - ref_nll) > 0.1 * abs(ref_nll)


@pytest.mark.parametrize('units', ['[-1,1]', '[0,255]'])
def test_gram_vjp_per_pixel(x64, units):
  """gram_vjp: value = nll (eq. 3), gradient = Lambda * grad nll (eq. 4)."""
  mu, s, y = _inputs(seed=4)
  n = mu.size
  lam = np_mask(s, UNITS_SCALE[units])
  value = np.asarray(losses.gram_vjp(mu, s, y, units=units))
  np.testing.assert_allclose(value, np_nll(mu, s, y), **TIGHT)
  dmu, ds = mean_grads(losses.gram_vjp, mu, s, y, units=units)
  ref_dmu, ref_ds = np_nll_grads(mu, s, y)
  np.testing.assert_allclose(dmu, lam * ref_dmu / n, **TIGHT)
  np.testing.assert_allclose(ds, lam * ref_ds / n, **TIGHT)


# --------------------------------------------------------------------------
# 3. Loss rescaling, eq. (5), versus GRAM.
# --------------------------------------------------------------------------


@pytest.mark.parametrize('units', ['[-1,1]', '[0,1]'])
def test_loss_rescale_differs_from_gram_by_sigmoid_prime_term(x64, units):
  """Section III-C: d/ds of eq. (5) = d/ds of eq. (4) + sigmoid'(s) nll / N.

  d/dmu is the same for both (Lambda does not depend on mu).
  """
  mu, s, y = _inputs(seed=5)
  n = mu.size
  lam = np_mask(s, UNITS_SCALE[units])
  dmu_r, ds_r = mean_grads(losses.loss_rescale, mu, s, y, units=units)
  dmu_g, ds_g = mean_grads(losses.gram, mu, s, y, units=units)
  np.testing.assert_allclose(dmu_r, dmu_g, **TIGHT)
  extra = lam * (1.0 - lam) * np_nll(mu, s, y) / n
  np.testing.assert_allclose(ds_r - ds_g, extra, rtol=1e-8, atol=1e-14)
  # Value of eq. (5).
  value = np.asarray(losses.loss_rescale(mu, s, y, units=units))
  np.testing.assert_allclose(value, lam * np_nll(mu, s, y), **TIGHT)


# --------------------------------------------------------------------------
# 4. Degenerate cases: unit mask, beta-NLL.
# --------------------------------------------------------------------------


@pytest.mark.parametrize('loss', ['gram', 'gram_vjp'])
def test_unit_mask_reduces_gram_to_nll(x64, loss):
  """Eq. (4) with Lambda = 1 is the plain gradient of eq. (3)."""
  mu, s, y = _inputs(seed=6)
  n = mu.size
  dmu, ds = mean_grads(losses.LOSSES[loss], mu, s, y, mask_fn=jnp.ones_like)
  ref_dmu, ref_ds = np_nll_grads(mu, s, y)
  np.testing.assert_allclose(dmu, ref_dmu / n, **TIGHT)
  np.testing.assert_allclose(ds, ref_ds / n, **TIGHT)
  value = np.asarray(losses.LOSSES[loss](mu, s, y, mask_fn=jnp.ones_like))
  np.testing.assert_allclose(value, np_nll(mu, s, y), **TIGHT)


@pytest.mark.parametrize('beta', [0.0, 0.5, 1.0])
def test_beta_nll_gradient(x64, beta):
  """beta-NLL: grad = exp(s)^beta * grad(nll); beta=1 gives MSE's d/dmu."""
  mu, s, y = _inputs(seed=7)
  n = mu.size
  weight = np.exp(s) ** beta
  dmu, ds = mean_grads(losses.beta_nll, mu, s, y, beta=beta)
  ref_dmu, ref_ds = np_nll_grads(mu, s, y)
  np.testing.assert_allclose(dmu, weight * ref_dmu / n, **TIGHT)
  np.testing.assert_allclose(ds, weight * ref_ds / n, **TIGHT)
  value = np.asarray(losses.beta_nll(mu, s, y, beta=beta))
  np.testing.assert_allclose(value, weight * np_nll(mu, s, y), **TIGHT)
  if beta == 0.0:
    np.testing.assert_allclose(dmu, ref_dmu / n, **TIGHT)
    np.testing.assert_allclose(value, np_nll(mu, s, y), **TIGHT)
  if beta == 1.0:
    np.testing.assert_allclose(dmu, (mu - y) / n, **TIGHT)
    np.testing.assert_allclose(ds, 0.5 * (np.exp(s) - (y - mu) ** 2) / n,
                               **TIGHT)


# --------------------------------------------------------------------------
# Faithful heteroscedastic regression (Stirn et al., AISTATS 2023).
# --------------------------------------------------------------------------


def test_faithful_gradient_is_mse_for_mu_and_nll_for_s(x64):
  """d/dmu is the MSE's (finite differences of the squared error alone),
  d/ds the NLL's (hand-derived); the value is MSE + NLL. Without the
  stop-gradient the NLL's d/dmu would be added, which this test catches."""
  mu, s, y = _inputs(seed=21)
  n = mu.size
  dmu, ds = mean_grads(losses.faithful, mu, s, y)
  mse_dmu = central_diff(lambda m: np.mean((y - m) ** 2), mu)
  np.testing.assert_allclose(dmu, mse_dmu, rtol=1e-6, atol=1e-12)
  ref_dmu, ref_ds = np_nll_grads(mu, s, y)
  np.testing.assert_allclose(ds, ref_ds / n, **TIGHT)
  value = np.asarray(losses.faithful(mu, s, y))
  np.testing.assert_allclose(value, (y - mu) ** 2 + np_nll(mu, s, y), **TIGHT)
  # The same loss without the stop-gradient fails the d/dmu check.
  no_stop = lambda m, lv, t: jnp.square(t - m) + losses.nll(m, lv, t)
  bad_dmu, _ = mean_grads(no_stop, mu, s, y)
  np.testing.assert_allclose(bad_dmu, mse_dmu + ref_dmu / n, rtol=1e-6,
                             atol=1e-12)
  assert np.abs(bad_dmu - mse_dmu).max() > 100 * np.abs(mse_dmu).max() * 1e-6


@pytest.mark.parametrize('stop_gradient', [True, False])
def test_faithful_srresnet_trunk_learns_what_mse_would(stop_gradient):
  """With ``log_var_stop_gradient`` every parameter but the log-variance
  head gets exactly the MSE's gradient; without it the trunk's differ."""
  graphdef, params, rest, lr, hr = small_srresnet(
      4, 2, 10, log_var_stop_gradient=stop_gradient)

  def grads(fn):
    def objective(p):
      m, lv = nnx.merge(graphdef, p, rest)(lr, train=True)
      return jnp.mean(fn(m, lv, hr))
    return nnx.to_flat_state(jax.grad(objective)(params))

  faithful, mse = grads(losses.faithful), grads(losses.mse)
  head = [k for k, _ in faithful if k[0] == 'log_var_head']
  assert len(head) == 2
  differ = []
  for (key, a), (_, b) in zip(faithful, mse):
    a, b = np.asarray(a[...]), np.asarray(b[...])
    if key[0] == 'log_var_head':
      assert np.abs(a).max() > 0 and np.abs(b).max() == 0
      continue
    if not np.allclose(a, b, rtol=1e-5, atol=1e-6 * np.abs(b).max()):
      differ.append(key)
  if stop_gradient:
    assert not differ, differ
  else:
    assert ('first', 'kernel') in differ


def test_mse_eq1(x64):
  """Eq. (1): (y - mu)^2 per pixel; d/dmu = 2(mu - y)/N, s is ignored."""
  mu, s, y = _inputs(seed=8)
  n = mu.size
  np.testing.assert_allclose(np.asarray(losses.mse(mu, s, y)), (y - mu) ** 2,
                             **TIGHT)
  dmu, ds = mean_grads(losses.mse, mu, s, y)
  np.testing.assert_allclose(dmu, 2.0 * (mu - y) / n, **TIGHT)
  np.testing.assert_array_equal(ds, 0.0)


# --------------------------------------------------------------------------
# 5. The NLL's optimum over s.
# --------------------------------------------------------------------------


def test_nll_minimised_at_log_squared_residual(x64):
  """Eq. (3): for fixed residual r, argmin_s nll = log r^2 (sigma^2 = r^2)."""
  mu, _, y = _inputs(seed=9, shape=(1, 2, 3, 2))
  r2 = (y - mu) ** 2
  assert r2.min() > 1e-6  # The optimum is finite.
  s_star = np.log(r2)
  # Grid scan of the numpy NLL: argmin within one grid step of log r^2.
  grid = np.arange(-20.0, 5.0, 1e-3)
  for idx in np.ndindex(mu.shape):
    values = np_nll(mu[idx], grid, y[idx])
    assert abs(grid[np.argmin(values)] - s_star[idx]) <= 1e-3
  # Central finite differences of the numpy NLL vanish there.
  eps = 1e-5
  fd = (np_nll(mu, s_star + eps, y) - np_nll(mu, s_star - eps, y)) / (2 * eps)
  np.testing.assert_allclose(fd, 0.0, atol=1e-8)
  # And so does jax's gradient of the code under test.
  dmu, ds = mean_grads(losses.nll, mu, s_star, y)
  np.testing.assert_allclose(ds, 0.0, atol=1e-14)
  assert np.abs(dmu).min() > 1e-4  # mu is not at its optimum.


# --------------------------------------------------------------------------
# 6. Finite differences.
# --------------------------------------------------------------------------


@pytest.mark.parametrize('loss', ['nll', 'loss_rescale', 'beta_nll', 'mse'])
def test_grad_matches_finite_differences(x64, loss):
  """jax.grad of mean(loss) w.r.t. mu and s = central differences (eps 1e-6).

  Valid for losses whose value is their objective, i.e. no stop_gradient
  (beta_nll with its default beta is checked with the weight frozen below).
  """
  mu, s, y = _inputs(seed=10, shape=(1, 2, 3, 2), s_range=(-3.0, 2.0))
  fn = losses.LOSSES[loss]
  dmu, ds = mean_grads(fn, mu, s, y)
  f = jax.jit(lambda m, lv: jnp.mean(fn(m, lv, jnp.asarray(y))))
  if loss == 'beta_nll':
    # The weight exp(s)^beta is frozen at the base point.
    w = np.exp(0.5 * s)
    f = lambda m, lv: np.mean(w * np_nll(m, lv, y))
  fd_mu = central_diff(lambda m: float(f(m, s)), mu)
  fd_s = central_diff(lambda lv: float(f(mu, lv)), s)
  np.testing.assert_allclose(dmu, fd_mu, rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(ds, fd_s, rtol=1e-6, atol=1e-9)


# --------------------------------------------------------------------------
# 7. GRAM's stop_gradient (section III-C).
# --------------------------------------------------------------------------


def test_gram_ds_excludes_mask_derivative(x64):
  """Eq. (4) never differentiates Lambda: d/ds has no sigmoid'(s) nll term.

  Without stop_gradient gram would equal loss_rescale (eq. 5) in gradient.
  """
  mu, s, y = _inputs(seed=11)
  n = mu.size
  lam = np_sigmoid(s)
  term = lam * (1.0 - lam) * np_nll(mu, s, y) / n
  _, ds_gram = mean_grads(losses.gram, mu, s, y)
  _, ds_rescale = mean_grads(losses.loss_rescale, mu, s, y)
  big = np.abs(term) > 1e-3 / n
  assert big.mean() > 0.5
  # The gap to loss_rescale is the whole sigmoid' term where it is not tiny.
  gap = np.abs(ds_rescale - ds_gram)[big]
  assert np.all(gap > 0.5 * np.abs(term[big]))
  # And gram's d/ds is the masked NLL derivative alone.
  _, ref_ds = np_nll_grads(mu, s, y)
  np.testing.assert_allclose(ds_gram, lam * ref_ds / n, **TIGHT)


def test_gram_gradient_is_not_the_derivative_of_its_value(x64):
  """Finite differences of gram's value include dLambda/ds; its gradient not.

  FD of the value equals loss_rescale's gradient; FD of Lambda0 * nll with
  Lambda frozen at the base point equals gram's gradient.
  """
  mu, s, y = _inputs(seed=12, shape=(1, 2, 3, 2), s_range=(-3.0, 2.0))
  f = jax.jit(lambda lv: jnp.mean(losses.gram(jnp.asarray(mu), lv,
                                              jnp.asarray(y))))
  fd_value = central_diff(lambda lv: float(f(lv)), s)
  lam0 = np_sigmoid(s)
  fd_frozen = central_diff(lambda lv: np.mean(lam0 * np_nll(mu, lv, y)), s)
  _, ds_gram = mean_grads(losses.gram, mu, s, y)
  _, ds_rescale = mean_grads(losses.loss_rescale, mu, s, y)
  np.testing.assert_allclose(ds_gram, fd_frozen, rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(ds_rescale, fd_value, rtol=1e-6, atol=1e-9)
  assert np.abs(ds_gram - fd_value).max() > 1e-3


def test_gram_keeps_nll_variance_optimum_loss_rescale_biases_it(x64):
  """III-C: GRAM's d/ds vanishes at s = log r^2 (unbiased variance); eq. (5)'s
  does not (its optimum variance is biased)."""
  mu, _, y = _inputs(seed=13, shape=(1, 2, 3, 2))
  s_star = np.log((y - mu) ** 2)
  n = mu.size
  _, ds_gram = mean_grads(losses.gram, mu, s_star, y)
  _, ds_rescale = mean_grads(losses.loss_rescale, mu, s_star, y)
  np.testing.assert_allclose(ds_gram, 0.0, atol=1e-14)
  lam = np_sigmoid(s_star)
  np.testing.assert_allclose(
      ds_rescale, lam * (1 - lam) * np_nll(mu, s_star, y) / n, **TIGHT)
  assert np.abs(ds_rescale).min() > 1e-6


# --------------------------------------------------------------------------
# 8. Pixel units of the attention mask.
# --------------------------------------------------------------------------


@pytest.mark.parametrize('units,scale', [
    ('[-1,1]', 1.0), ('[0,1]', 0.5), ('[0,255]', 127.5), (' [0, 255] ', 127.5),
    (127.5, 127.5), (2.0, 2.0)])
def test_attention_mask_units(x64, units, scale):
  """III-B: Lambda = sigma_u^2 / (1 + sigma_u^2) = sigmoid(s + 2 ln scale)."""
  s = np.linspace(-15.0, 8.0, 47)
  mask = np.asarray(losses.attention_mask(s, units))
  np.testing.assert_allclose(mask, np_mask(s, scale), **TIGHT)
  np.testing.assert_allclose(mask, np_sigmoid(s + 2.0 * np.log(scale)),
                             **TIGHT)


def test_attention_mask_named_ranges_hand_values():
  """Spot values: s = 0 gives 1/2, 1/(1+4) and 127.5^2/(1+127.5^2)."""
  zero = jnp.zeros((1,))
  assert float(losses.attention_mask(zero, '[-1,1]')[0]) == pytest.approx(0.5)
  assert float(losses.attention_mask(zero, '[0,1]')[0]) == pytest.approx(0.2)
  assert float(losses.attention_mask(zero, '[0,255]')[0]) == pytest.approx(
      16256.25 / 16257.25, rel=1e-6)


@pytest.mark.parametrize('units', ['[0,100]', 'pixels', '', 0.0, -1.0])
def test_invalid_units_raise(units):
  """Unknown unit names and non-positive scales are rejected."""
  with pytest.raises(ValueError):
    losses.attention_mask(jnp.zeros((2,)), units)
  with pytest.raises(ValueError):
    losses.make_pixel_loss('gram', {'units': units})


# --------------------------------------------------------------------------
# 9. log-variance clipping.
# --------------------------------------------------------------------------

S_CLIP = np.array([-20.0, -10.5, -5.0, 0.0, 3.0, 9.5, 10.5, 25.0])


@pytest.mark.parametrize('loss', ['nll', 'gram'])
def test_log_var_clip(x64, loss):
  """s outside (lo, hi) gets zero gradient and the loss sees the clipped s."""
  rng = np.random.default_rng(14)
  shape = (1, 1, 2, S_CLIP.size)
  s = np.broadcast_to(S_CLIP, shape).copy()
  mu = rng.uniform(-1, 1, shape)
  y = rng.uniform(-1, 1, shape)
  fn = losses.make_pixel_loss(loss, {}, log_var_clip=(-10.0, 10.0))
  s_c = np.clip(s, -10.0, 10.0)
  lam = np_sigmoid(s_c) if loss == 'gram' else np.ones_like(s_c)
  value = np.asarray(fn(jnp.asarray(mu), jnp.asarray(s), jnp.asarray(y)))
  np.testing.assert_allclose(value, lam * np_nll(mu, s_c, y), **TIGHT)
  dmu, ds = mean_grads(fn, mu, s, y)
  ref_dmu, ref_ds = np_nll_grads(mu, s_c, y)
  inside = np.abs(s) < 10.0
  np.testing.assert_array_equal(ds[~inside], 0.0)
  np.testing.assert_allclose(ds[inside], (lam * ref_ds / s.size)[inside],
                             **TIGHT)
  np.testing.assert_allclose(dmu, lam * ref_dmu / s.size, **TIGHT)


@pytest.mark.parametrize('clip', [(), None])
def test_no_clip_is_identity(x64, clip):
  """log_var_clip () or None leaves s (and its gradient) untouched."""
  mu, _, y = _inputs(seed=15, shape=(1, 1, 1, S_CLIP.size))
  s = S_CLIP.reshape(mu.shape)
  fn = losses.make_pixel_loss('nll', None, log_var_clip=clip)
  value = np.asarray(fn(mu, s, y))
  np.testing.assert_allclose(value, np_nll(mu, s, y), **TIGHT)
  _, ds = mean_grads(fn, mu, s, y)
  np.testing.assert_allclose(ds, np_nll_grads(mu, s, y)[1] / s.size, **TIGHT)
  assert np.all(ds != 0.0)


@pytest.mark.parametrize('clip', [(10.0, -10.0), (5.0, 5.0), (1.0,),
                                  (-1.0, 0.0, 1.0)])
def test_bad_clip_raises(clip):
  """log_var_clip must be () or (lo, hi) with lo < hi."""
  with pytest.raises(ValueError, match='log_var_clip'):
    losses.make_pixel_loss('nll', {}, log_var_clip=clip)


# --------------------------------------------------------------------------
# 10. Registry and option binding.
# --------------------------------------------------------------------------

_CUSTOM = 'test_losses__weighted_l1'


@pytest.fixture
def custom_loss():
  """Registers a throw-away loss, and always removes it again."""
  assert _CUSTOM not in losses.LOSSES
  try:

    @losses.register(_CUSTOM)
    def weighted_l1(mean, log_var, target, *, weight=1.0):
      del log_var
      return weight * jnp.abs(target - mean)

    yield weighted_l1
  finally:
    losses.LOSSES.pop(_CUSTOM, None)


def test_register_and_bind_options(custom_loss):
  """A registered loss is found by name and gets config.loss.options."""
  assert losses.get(_CUSTOM) is custom_loss
  mu, s, y = _inputs(seed=16)
  fn = losses.make_pixel_loss(_CUSTOM, {'weight': 3.0})
  ref = 3.0 * np.abs(y - mu)
  np.testing.assert_allclose(np.asarray(fn(mu, s, y)), ref, rtol=1e-6,
                             atol=1e-6)
  # Also inside jit.
  np.testing.assert_allclose(np.asarray(jax.jit(fn)(mu, s, y)), ref,
                             rtol=1e-6, atol=1e-6)
  with pytest.raises(ValueError, match=r"scale is not an option of loss "
                     r"'test_losses__weighted_l1'; it accepts \['weight'\]"):
    losses.make_pixel_loss(_CUSTOM, {'scale': 3.0})
  # Re-registering the same function is fine; another one under it is not.
  losses.register(_CUSTOM)(custom_loss)
  with pytest.raises(ValueError):
    losses.register(_CUSTOM)(lambda mean, log_var, target: mean)


def test_register_var_keyword_accepts_any_option():
  """A loss taking **options receives whatever options are configured."""
  name = _CUSTOM + '_kw'
  try:

    @losses.register(name)
    def echo(mean, log_var, target, **options):
      return mean * 0.0 + options['anything']

    fn = losses.make_pixel_loss(name, {'anything': 7.0})
    out = np.asarray(fn(jnp.zeros((1, 2, 2, 3)), jnp.zeros((1, 2, 2, 3)),
                        jnp.zeros((1, 2, 2, 3))))
    np.testing.assert_array_equal(out, 7.0)
  finally:
    losses.LOSSES.pop(name, None)


def test_make_pixel_loss_binds_builtin_options(x64):
  """make_pixel_loss('gram', {'units': '[0,255]'}) uses the [0,255] mask."""
  mu, s, y = _inputs(seed=17)
  fn = losses.make_pixel_loss('gram', {'units': '[0,255]'})
  np.testing.assert_allclose(np.asarray(fn(mu, s, y)),
                             np_mask(s, 127.5) * np_nll(mu, s, y), **TIGHT)
  fn = losses.make_pixel_loss('beta_nll', {'beta': 1.0})
  dmu, _ = mean_grads(fn, mu, s, y)
  np.testing.assert_allclose(dmu, (mu - y) / mu.size, **TIGHT)


@pytest.mark.parametrize('name,option', [
    ('gram', 'beta'), ('nll', 'units'), ('mse', 'weight'),
    ('loss_rescale', 'mask_fn'), ('beta_nll', 'units')])
def test_unknown_option_raises(name, option):
  """Options a loss does not take are named, with the loss's own."""
  with pytest.raises(ValueError) as info:
    losses.make_pixel_loss(name, {option: 1.0})
  accepted = losses.accepted_options(name)
  assert str(info.value) == (f'{option} is not an option of loss {name!r}; '
                             f'it accepts {accepted or "no options"}')
  assert option not in accepted


def test_unknown_name_raises_keyerror_listing_choices():
  """An unknown config.loss.name lists the registered losses."""
  for call in (lambda: losses.get('gramm'),
               lambda: losses.make_pixel_loss('gramm')):
    with pytest.raises(KeyError) as info:
      call()
    assert 'gram' in str(info.value)
    assert 'loss_rescale' in str(info.value)


def test_builtin_names():
  """The paper's losses are registered under their names ('mle' is eq. 3)."""
  for name in ('mse', 'nll', 'mle', 'gram', 'gram_vjp', 'loss_rescale',
               'beta_nll', 'faithful'):
    assert name in losses.LOSSES
  assert losses.get('mle') is losses.nll


@pytest.mark.parametrize('name', sorted(losses.LOSSES))
def test_every_loss_returns_input_shape(name):
  """Every registered loss maps NHWC (mean, log_var, target) to an NHWC map."""
  mu, s, y = (a.astype(np.float32) for a in _inputs(seed=18))
  fn = losses.make_pixel_loss(name)
  out = fn(jnp.asarray(mu), jnp.asarray(s), jnp.asarray(y))
  assert out.shape == SHAPE
  assert out.dtype == jnp.float32
  assert np.all(np.isfinite(np.asarray(out)))
  grads = mean_grads(fn, mu, s, y)
  assert all(g.shape == SHAPE and np.all(np.isfinite(g)) for g in grads)
