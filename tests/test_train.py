"""End-to-end training: the demo config trains, logs, validates, checkpoints
(the latest and the best), resumes exactly, runs several steps per dispatch,
keeps an EMA of the weights and writes its sample pictures; bad config
values name the key."""

import json
import pathlib

import jax
import numpy as np
import pytest
from PIL import Image

from configs import demo as demo_config
from gramjax import data as data_lib
from gramjax.core import losses
from gramjax.core.errors import UserError
from gramjax.inference import predictor as inference
from gramjax.state import checkpoint as ckpt_lib
from gramjax.state import train_state as state_lib
from gramjax.training import loop as train
from gramjax.training import validation
from tests.conftest import run_module, shared_data


# The demo shrunk: ``small_demo`` starts from these config keys.
SMALL = {'log_every': 10, 'checkpoint_every': 20, 'tensorboard': False,
         'model.num_blocks': 2, 'model.channels': 16, 'data.crop_size': 48,
         'batch_size': 8}


def small_demo(total_steps, **overrides):
  c = demo_config.get_config()
  for k, v in {'total_steps': total_steps, **SMALL, **overrides}.items():
    node = c
    *path, last = k.split('.')
    for p in path:
      node = node[p]
    node[last] = v
  return c


def read_metrics(workdir, validation=False):
  """The training lines of metrics.jsonl (or, with ``validation``, the
  lines of the validation sets)."""
  lines = (pathlib.Path(workdir) / 'metrics.jsonl').read_text().splitlines()
  rows = [json.loads(l) for l in lines]
  return [r for r in rows if ('loss' in r) != validation]


def params_of(state):
  return [np.asarray(x) for x in jax.tree.leaves(state.params)]


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
  """60 steps of the (shrunk) demo config, then the same command to 80."""
  workdir = tmp_path_factory.mktemp('demo')
  state60 = train.train_and_evaluate(small_demo(60), workdir)
  metrics60 = read_metrics(workdir)
  state80 = train.train_and_evaluate(small_demo(80), workdir)
  return workdir, state60, metrics60, state80


def test_loss_falls_and_metrics_are_logged(demo_run):
  _, _, metrics, _ = demo_run
  assert [m['step'] for m in metrics] == [10, 20, 30, 40, 50, 60]
  for key in 'loss nll psnr sigma_grey mask lr grad_norm steps_per_sec'.split():
    assert all(np.isfinite(m[key]) for m in metrics), key
  assert metrics[-1]['loss'] < metrics[0]['loss'] - 0.1
  assert metrics[-1]['psnr'] > metrics[0]['psnr'] + 1.0
  assert metrics[0]['lr'] == pytest.approx(1e-3)


def test_checkpoint_restores_the_final_state(demo_run):
  workdir, _, _, state80 = demo_run
  ckpts = ckpt_lib.open_read_only(workdir)  # A reader: writes nothing.
  assert ckpts.latest_step() == 80
  restored = ckpts.restore(80, ckpt_lib.abstract_like(state80))
  assert int(restored.step) == 80
  for a, b in zip(params_of(restored), params_of(state80)):
    np.testing.assert_array_equal(a, b)
  assert ckpts.restore_config(80)['total_steps'] == 80
  ckpts.close()


def test_second_run_resumes_instead_of_restarting(demo_run):
  workdir, state60, _, state80 = demo_run
  assert int(state60.step) == 60 and int(state80.step) == 80
  assert [m['step'] for m in read_metrics(workdir)] == [  # None twice.
      10, 20, 30, 40, 50, 60, 70, 80]


def test_samples_written_for_held_out_image(demo_run):
  workdir, _, _, _ = demo_run
  samples = workdir / 'samples'
  hr = Image.open(pathlib.Path(__import__('skimage').__file__).parent /
                  'data' / 'chelsea.png')
  w, h = (hr.width // 4) * 4, (hr.height // 4) * 4
  for name in ('chelsea_mean.png', 'chelsea_uncertainty.png',
               'chelsea_bicubic.png'):
    img = Image.open(samples / name)
    assert img.size == (w, h) and img.mode == 'RGB', name
  unc = np.asarray(Image.open(samples / 'chelsea_uncertainty.png'))
  assert unc.std() > 1  # A map, not a constant.
  result = json.loads((samples / 'samples.json').read_text())[0]
  assert result['image'] == 'chelsea.png'
  assert 20 < result['psnr_y_bicubic'] < 40


def test_resume_is_exact(tmp_path):
  """20 + 20 steps in two runs == 40 steps in one (bit for bit on CPU)."""
  run = lambda n, w: train.train_and_evaluate(
      small_demo(n, **{'data.sample_images': ''}), tmp_path / w)
  straight, _, resumed = run(40, 'a'), run(20, 'b'), run(40, 'b')
  for a, b in zip(params_of(straight), params_of(resumed)):
    np.testing.assert_array_equal(a, b)
  ma, mb = read_metrics(tmp_path / 'a'), read_metrics(tmp_path / 'b')
  for x, y in zip(ma, mb):
    assert x['step'] == y['step'] and x['loss'] == y['loss']


@pytest.mark.parametrize('key,value,message', [
    ('data.crop_size', 50, 'config.data.crop_size=50'),
    ('optimizer.lr_boundaries', (300, 200), 'lr_boundaries'),
    ('optimizer.lr_values', (1e-4,), 'lr_values'),
    ('loss.name', 'gramm', "config.loss.name='gramm'"),
    ('loss.log_var_clip', (10.0, -10.0), 'log_var_clip'),
    ('profile_steps', (5, 5), 'config.profile_steps=(5, 5)'),
    ('loss.mse_warmup', -1, 'config.loss.mse_warmup=-1'),
    ('profile_steps', (3,), 'config.profile_steps=(3,)'),
])
def test_bad_config_values_name_the_key(tmp_path, key, value, message):
  c = small_demo(1)
  *section, name = key.split('.')
  with c.unlocked():
    (c[section[0]] if section else c)[name] = value
  with pytest.raises(UserError, match=message.replace('(', r'\(').replace(
      ')', r'\)').replace('[', r'\[')):
    train.train_and_evaluate(c, tmp_path)


def test_unknown_loss_option_is_refused(tmp_path):
  c = small_demo(1)
  c.loss.options = {'unitz': '[0,1]'}
  with pytest.raises(UserError, match='config.loss.options.unitz'):
    train.train_and_evaluate(c, tmp_path)


@pytest.mark.slow
def test_paper_model_three_steps_on_sunhays80(tmp_path):
  """The paper-size smoke run of docs/training.md: gram.py, real photos, 3 steps."""
  data = shared_data('SunHays80')
  r = run_module('main', '--config=configs/gram.py', f'--workdir={tmp_path}',
                 f'--config.data.train_dir={data}', '--config.total_steps=3',
                 '--config.log_every=1')
  assert r.returncode == 0, r.stderr[-3000:]
  metrics = read_metrics(tmp_path)
  assert [m['step'] for m in metrics] == [1, 2, 3]
  assert all(np.isfinite(m['loss']) for m in metrics)
  assert metrics[0]['nll'] < 10  # Stable init: no 6e7 first NLL.
  assert (tmp_path / 'checkpoints' / '3').is_dir()


@pytest.mark.parametrize('name', (
    'gram gram_vjp mse mle loss_rescale beta_nll faithful gram_official_code'
    .split()))
def test_every_experiment_config_trains(tmp_path, name):
  """Each configs/*.py runs (shrunk): its loss, BatchNorm + PReLU + tanh
  and the log-variance clip of the official-code config included."""
  import importlib  # pylint: disable=g-import-not-at-top
  c = importlib.import_module(f'configs.{name}').get_config()
  c.total_steps, c.log_every, c.checkpoint_every = 2, 1, 2
  c.model.num_blocks, c.model.channels = 1, 8
  c.batch_size, c.data.crop_size, c.tensorboard = 4, 48, False
  c.data.train_dir = 'builtin:skimage'
  state = train.train_and_evaluate(c, tmp_path)
  metrics = read_metrics(tmp_path)
  assert [m['step'] for m in metrics] == [1, 2]
  assert all(np.isfinite(m['loss']) for m in metrics)
  bn = jax.tree.leaves(state.model_state)
  assert bool(bn) == c.model.batch_norm
  if bn:  # BatchNorm statistics moved away from their initial values.
    assert any(np.abs(np.asarray(x)).sum() > 0 for x in bn[::2])


# ------------------------------------------- several steps per dispatch --

def tiny(total_steps, **overrides):
  return small_demo(total_steps, **{
      'model.num_blocks': 1, 'model.channels': 8, 'data.crop_size': 32,
      'batch_size': 4, 'log_every': 5, 'checkpoint_every': 10,
      'data.sample_images': '', **overrides})


def assert_same_params(a, b):
  """Bit for bit: on the CPU a dispatch's steps are unrolled into one
  program, which computes exactly what the single steps compute. (A rolled
  scan, as on GPUs, compiles its body on its own: there the two may differ
  by float rounding.)"""
  for x, y in zip(params_of(a), params_of(b)):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize('step,k,everies,total,want', [
    (0, 8, [5, 10], 20, 5), (5, 8, [5, 10], 20, 5), (3, 1, [5], 20, 1),
    (0, 4, [100], 200, 4), (96, 4, [100], 200, 4), (98, 4, [100], 200, 2),
    (18, 8, [50], 20, 2)])
def test_dispatches_end_where_periodic_actions_fall(step, k, everies, total,
                                                     want):
  assert train.next_dispatch(step, k, total, everies) == want


def test_profile_steps_write_a_trace_of_those_steps(tmp_path, caplog):
  """A jax.profiler trace of steps 3-6 at dispatch boundaries (k=2 and a
  log at 5: dispatches start at 0, 2, 4, 5, 7, so the trace holds 4-7),
  with the run's results unchanged."""
  caplog.set_level('INFO')
  plain = train.train_and_evaluate(tiny(8, steps_per_dispatch=2),
                                   tmp_path / 'a')
  traced = train.train_and_evaluate(
      tiny(8, steps_per_dispatch=2, profile_steps=(3, 6)), tmp_path / 'b')
  assert 'profiled steps 4-7 into' in caplog.text
  traces = list((tmp_path / 'b' / 'profile').rglob('*.trace.json.gz'))
  assert len(traces) == 1 and traces[0].stat().st_size > 0
  assert list((tmp_path / 'b' / 'profile').rglob('*.xplane.pb'))
  assert not (tmp_path / 'a' / 'profile').exists()
  assert_same_params(plain, traced)


def test_mse_warmup_trains_the_mean_alone_then_the_likelihood():
  """GRAM with a 3-step MSE warm-up: after 3 steps every parameter equals
  an MSE run's (the log-variance head still at its initial value); the
  fourth step follows GRAM's gradient, not the MSE's."""
  rng = np.random.default_rng(0)
  batches = [{'hr': rng.integers(0, 256, (4, 32, 32, 3), np.uint8)}
             for _ in range(4)]

  def run(loss, warmup, steps):
    c = tiny(steps)
    recipe = state_lib.build(c)
    step = jax.jit(train.make_train_step(
        recipe.graphdef, recipe.tx, losses.make_pixel_loss(loss, {}),
        recipe.schedule, scale=4, round_lr=True, attention_units='[-1,1]',
        mse_warmup=warmup))
    state = recipe.init(recipe.params, recipe.model_state)
    for b in batches[:steps]:
      state, metrics = step(state, b)
    return state, metrics, recipe

  warm, metrics, recipe = run('gram', 3, 3)
  mse, _, _ = run('mse', 0, 3)
  for a, b in zip(params_of(warm), params_of(mse)):
    np.testing.assert_array_equal(a, b)
  head = lambda s: np.asarray(s.params['log_var_head']['kernel'][...])
  np.testing.assert_array_equal(head(warm),
                                np.asarray(recipe.params['log_var_head']
                                           ['kernel'][...]))
  assert metrics['loss'] == pytest.approx(float(metrics['mse']), rel=1e-6)
  after, metrics, _ = run('gram', 3, 4)
  mse4, _, _ = run('mse', 0, 4)
  assert not np.array_equal(head(after), head(warm))   # The head learns.
  assert not np.allclose(params_of(after)[0], params_of(mse4)[0])
  assert metrics['loss'] != pytest.approx(float(metrics['mse']), rel=1e-3)


def test_k_steps_per_dispatch_equal_k_single_steps(tmp_path):
  single = train.train_and_evaluate(tiny(12, steps_per_dispatch=1),
                                    tmp_path / 'k1')
  scanned = train.train_and_evaluate(tiny(12, steps_per_dispatch=4),
                                     tmp_path / 'k4')
  assert int(scanned.step) == 12
  assert_same_params(single, scanned)
  a, b = read_metrics(tmp_path / 'k1'), read_metrics(tmp_path / 'k4')
  assert [m['step'] for m in a] == [m['step'] for m in b] == [5, 10, 12]
  np.testing.assert_allclose([m['loss'] for m in a], [m['loss'] for m in b],
                             rtol=1e-6)  # Summed on the device, then / k.
  assert sorted(p.name for p in (tmp_path / 'k4' / 'checkpoints').iterdir()
                if p.name.isdigit()) == ['10', '12']


def test_resumed_with_another_k_ends_where_an_uninterrupted_run_ends(
    tmp_path):
  """Stopped at a checkpoint (what a kill leaves) and resumed with k=3."""
  run = lambda n, k, w: train.train_and_evaluate(
      tiny(n, steps_per_dispatch=k), tmp_path / w)
  straight, _, resumed = run(20, 1, 'a'), run(10, 2, 'b'), run(20, 3, 'b')
  assert int(resumed.step) == 20
  assert_same_params(straight, resumed)


# ------------------------------------------------------------------ EMA --

def test_ema_follows_the_parameters_step_by_step():
  """The state's EMA against the recursion computed here from the
  parameters of each step."""
  c = tiny(3, ema_decay=0.5)
  recipe = state_lib.build(c)
  step = jax.jit(train.make_train_step(
      recipe.graphdef, recipe.tx, losses.get('nll'), recipe.schedule,
      scale=4, round_lr=True, attention_units='[-1,1]', ema_decay=0.5))
  state = recipe.init(recipe.params, recipe.model_state)
  rng = np.random.default_rng(0)
  want = params_of(state)
  for _ in range(3):
    state, _ = step(state, {'hr': rng.integers(0, 256, (4, 32, 32, 3),
                                                np.uint8)})
    want = [0.5 * w + 0.5 * p for w, p in zip(want, params_of(state))]
  got = [np.asarray(x) for x in jax.tree.leaves(state.ema_params)]
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
  assert not np.allclose(got[0], params_of(state)[0])


@pytest.mark.parametrize('decay', [0.0, 0.9])
def test_ema_in_the_checkpoint_and_in_what_evaluation_uses(tmp_path, decay):
  from gramjax.inference import predictor as inference  # pylint: disable=g-import-not-at-top
  state = train.train_and_evaluate(tiny(10, ema_decay=decay), tmp_path)
  predictor = inference.load(tmp_path)
  used = [np.asarray(x) for x in jax.tree.leaves(predictor.params)]
  if decay:
    assert predictor.weights == 'ema'
    want = [np.asarray(x) for x in jax.tree.leaves(state.ema_params)]
    assert not np.allclose(used[0], params_of(state)[0])
  else:
    assert predictor.weights == 'params' and state.ema_params is None
    want = params_of(state)
  for u, w in zip(used, want):
    np.testing.assert_array_equal(u, w)
  val = read_metrics(tmp_path, validation=True)
  assert val and 'val/heldout/psnr' in val[-1]


# ------------------------------------------- validation and best weights --

def test_validation_is_logged_and_the_best_checkpoint_kept(tmp_path,
                                                           monkeypatch):
  """Scripted validation PSNRs 30, 20, 10 at steps 5, 10, 15: the best
  (step 5) is kept beside the latest (keep_checkpoints=1) and
  ``--step=best`` loads it."""
  scripted = iter([30.0, 20.0, 10.0])
  monkeypatch.setattr(validation.Evaluator, 'run', lambda self, p: {
      f'val/{self.name}/psnr': next(scripted), f'val/{self.name}/seconds':
      0.0})
  c = tiny(15, keep_checkpoints=1, checkpoint_every=15, **{
      'evals.heldout.every': 5})
  train.train_and_evaluate(c, tmp_path)
  val = read_metrics(tmp_path, validation=True)
  assert [(v['step'], v['val/heldout/psnr']) for v in val] == [
      (5, 30.0), (10, 20.0), (15, 10.0)]
  # The best by orbax's metrics (saved with the checkpoint), no file of ours.
  assert ckpt_lib.best_step(tmp_path) == 5
  assert not (tmp_path / 'best.json').exists()
  assert sorted(ckpt_lib.open_read_only(tmp_path).all_steps()) == [5, 15]
  assert inference.load(tmp_path, 'best').step == 5
  assert inference.load(tmp_path).step == 15
  Image.fromarray(np.full((12, 10, 3), 99, np.uint8)).save(tmp_path / 'a.png')
  r = run_module('predict', f'--workdir={tmp_path}', '--step=best',
                 f'--input={tmp_path / "a.png"}', f'--output={tmp_path / "o"}')
  assert r.returncode == 0, r.stderr[-2000:]
  assert f'model: {tmp_path} step 5 (ema weights, x4)' in r.stderr


def test_missing_validation_folder_is_logged_and_training_goes_on(
    tmp_path, caplog):
  caplog.set_level('INFO')
  c = tiny(5, **{'evals.heldout.folder': str(tmp_path / 'nope')})
  state = train.train_and_evaluate(c, tmp_path / 'w')
  assert int(state.step) == 5
  assert f'validation set heldout: {tmp_path / "nope"} does not exist; ' \
         'training goes on without it' in caplog.text
  assert read_metrics(tmp_path / 'w', validation=True) == []


def test_validation_on_a_slice_of_the_heldout_images(tmp_path):
  """evals.<name>.folder='heldout[:1]' validates on the first image that
  data.holdout keeps out, never on one trained on."""
  rng = np.random.default_rng(0)
  for i in range(5):
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), np.uint8)).save(
        tmp_path / f'{i}.png')
  c = tiny(5, **{'data.train_dir': str(tmp_path), 'data.holdout': 2,
                 'evals.heldout.folder': 'heldout[:1]'})
  (evaluator,) = validation.evaluators_from_config(c)
  held_out = data_lib.held_out_images(c.data)
  assert evaluator.images == held_out[:1] and len(held_out) == 2
  c.evals.heldout.folder = 'heldout[2:]'
  with pytest.raises(UserError, match=r'config.evals.heldout.folder='
                     r'heldout\[2:\]: selects none of the 2 held-out'):
    validation.evaluators_from_config(c)
  c.data.holdout = 0
  with pytest.raises(UserError, match=r"config.evals.heldout.folder="
                     r"'heldout\[2:\]': held-out images need config.data."
                     r"holdout > 0"):
    train.train_and_evaluate(c, tmp_path / 'w')


def test_bad_evaluator_key_names_it(tmp_path):
  c = tiny(5, **{'evals.heldout.every': 0})
  with pytest.raises(UserError, match=r'config.evals.heldout.every=0: must '
                     r'be >= 1 \(steps\)'):
    train.train_and_evaluate(c, tmp_path)


def test_rolled_dispatch_matches_single_steps():
  """The rolled scan (the GPU/TPU path) against three jitted steps, to float
  rounding (Adam makes it up to ~1e-6 of parameter), metrics summed."""
  recipe = state_lib.build(tiny(3))
  step = train.make_train_step(
      recipe.graphdef, recipe.tx, losses.get('gram'), recipe.schedule,
      scale=4, round_lr=True, attention_units='[-1,1]')
  hr = np.random.default_rng(1).integers(0, 256, (3, 4, 32, 32, 3), np.uint8)
  init = lambda: recipe.init(recipe.params, recipe.model_state)
  rolled, sums = jax.jit(train.make_dispatch(step, 3, unroll=False))(
      init(), {'hr': hr})
  state, losses_ = init(), []
  for i in range(3):
    state, m = jax.jit(step)(state, {'hr': hr[i]})
    losses_.append(float(m['loss']))
  assert int(rolled.step) == 3
  for x, y in zip(params_of(rolled), params_of(state)):
    np.testing.assert_allclose(x, y, rtol=0, atol=1e-5)
  assert float(sums['loss']) == pytest.approx(sum(losses_), rel=1e-5)
