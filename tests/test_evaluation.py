"""Evaluation (gramjax.evaluation.protocol, tables, reporting and the evaluate and
report commands): bicubic reproduces the paper's Table I numbers on Set5/Set14,
trained workdirs evaluate with uncertainty summaries, the report writes the
table, and bad input is one clear line with exit status 2."""

import dataclasses
import json
import math
import pathlib
import re
import shutil
import types

import numpy as np
import pytest
from PIL import Image

from configs import demo as demo_config
from gramjax.metrics import summary
from gramjax import data as data_lib
from gramjax.data import heldout
from gramjax.evaluation import folders as folders_lib
from gramjax.evaluation import protocol as evaluation
from gramjax.evaluation.protocol import Protocol
from gramjax.evaluation import recalibrate
from gramjax.core import imresize
from gramjax.inference import predictor as inference
from gramjax.metrics import quality as metrics
from gramjax.reporting import tables
from gramjax.training import loop as train
from gramjax.metrics import uncertainty
from gramjax.core.errors import UserError
from tests.conftest import (error_lines, run_module, shared_data,
                            smooth_image, tiny_model_config)

ENTRY_KEYS = {'psnr', 'ssim', 'images', 'convention'}
UNCERTAINTY_KEYS = {'sigma_rgb_mean_grey', 'sigma_rgb_median_grey',
                    'rmse_grey', 'nll_grey', 'error_channel_correlation'}


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
  """Synthetic training and evaluation folders (no shared data needed)."""
  root = tmp_path_factory.mktemp('images')
  rng = np.random.default_rng(0)
  train_dir, eval_dir = root / 'train', root / 'Synth'
  train_dir.mkdir()
  eval_dir.mkdir()
  for i in range(4):
    Image.fromarray(smooth_image(rng, 64, 64)).save(train_dir / f'{i}.png')
  Image.fromarray(smooth_image(rng, 52, 61)).save(eval_dir / 'a.png')
  Image.fromarray(smooth_image(rng, 48, 48, 1)[..., 0]).save(
      eval_dir / 'grey.png')
  return train_dir, eval_dir


@pytest.fixture(scope='module')
def workdir(folders, tmp_path_factory):
  """A tiny x4 model trained for 10 steps (checkpoints at 5 and 10)."""
  train_dir, _ = folders
  w = tmp_path_factory.mktemp('workdir')
  train.train_and_evaluate(tiny_model_config(train_dir), w)
  return w


# ------------------------------------------------- paper Table I, bicubic --

def test_bicubic_reproduces_table_one_on_set5_and_set14(tmp_path):
  set5, set14 = shared_data('Set5'), shared_data('Set14')
  out = tmp_path / 'bicubic.json'
  r = run_module('evaluate', '--method=bicubic',
                 f'--data={set5},{set14}', '--scale=4', f'--json={out}')
  assert r.returncode == 0, r.stderr[-3000:]
  result = json.loads(out.read_text())
  assert list(result) == ['Set5', 'Set14']
  for entry in result.values():
    assert set(entry) == ENTRY_KEYS
    assert isinstance(entry['images'], int)
    assert entry['convention'] == 'standard'
  assert result['Set5']['images'] == 5 and result['Set14']['images'] == 14
  # Paper, Table I: Set5 28.42/0.8099, Set14 26.00/0.7025.
  assert result['Set5']['psnr'] == pytest.approx(28.42, abs=0.01)
  assert result['Set14']['psnr'] == pytest.approx(26.00, abs=0.01)
  assert result['Set5']['ssim'] == pytest.approx(0.8099, abs=0.002)
  assert result['Set14']['ssim'] == pytest.approx(0.7025, abs=0.002)
  assert "convention 'standard'" in r.stdout
  assert 'Set14: 14/14' in r.stderr and 'ETA' in r.stderr  # Progress lines.


# ------------------------------------------------------------ greyscale --

def test_greyscale_file_is_measured_on_grey_values(tmp_path):
  rng = np.random.default_rng(1)
  g = smooth_image(rng, 64, 72, 1)[..., 0]
  path = tmp_path / 'grey.png'
  Image.fromarray(g).save(path)
  assert Image.open(path).mode == 'L'
  result = evaluation.evaluate_image(path, Protocol(4))
  assert result.grey
  # Independently: grey HR -> MATLAB bicubic LR (uint8) -> bicubic x4.
  hr = g.astype(np.float64)
  lr = np.clip(np.round(imresize.imresize(hr[..., None] / 255, 0.25) * 255),
               0, 255)
  bic = np.clip(np.round(imresize.imresize(lr / 255, 4.0) * 255), 0,
                255)[..., 0]
  want = metrics.psnr(bic, hr, shave=4)
  assert result.psnr == pytest.approx(want, abs=1e-9)
  y = lambda v: 16 + 219 * v / 255  # Y of replicated grey channels.
  on_y = metrics.psnr(np.floor(y(bic) + 0.5), np.floor(y(hr) + 0.5), shave=4)
  assert abs(on_y - result.psnr) > 0.5
  # The same pixels saved as RGB are measured on Y (the file decides).
  Image.fromarray(np.repeat(g[..., None], 3, -1)).save(tmp_path / 'rgb.png')
  rgb = evaluation.evaluate_image(tmp_path / 'rgb.png', Protocol(4))
  assert not rgb.grey and rgb.psnr == pytest.approx(on_y, abs=1e-9)


# ------------------------------------------------------ conventions, CLI --

def test_official_code_convention_differs_and_is_labelled(folders, tmp_path):
  _, eval_dir = folders
  runs = {}
  for conv in ('standard', 'official_code'):
    out = tmp_path / f'{conv}.json'
    r = run_module('evaluate', '--method=bicubic',
                   f'--data={eval_dir}', f'--convention={conv}',
                   f'--json={out}', '--per_image')
    assert r.returncode == 0, r.stderr[-3000:]
    runs[conv] = r.stdout, json.loads(out.read_text())['Synth']
  (std_out, std), (off_out, off) = runs['standard'], runs['official_code']
  assert std['convention'] == 'standard'
  assert off['convention'] == 'official_code'
  assert abs(std['psnr'] - off['psnr']) > 1e-3
  assert abs(std['ssim'] - off['ssim']) > 1e-3
  assert "convention 'official_code'" in off_out and '10 px' in off_out
  assert '7x7 uniform' in off_out and '11x11 Gaussian' in std_out
  # --per_image rows, the greyscale file marked.
  assert 'a.png' in std_out and 'grey.png' in std_out and '(grey)' in std_out


@pytest.mark.parametrize('args,message', [
    (['--method=bicubic', '--workdir=W'], '--workdir=W'),
    ([], '--method=bicubic or --workdir'),
    (['--method=lanczos'], '--method=lanczos'),
    (['--method=bicubic', '--step=3'], '--step=3'),
    (['--method=bicubic', '--convention=matlab'], '--convention=matlab'),
    (['--method=bicubic', '--tile=-1'], '--tile=-1'),
])
def test_bad_flag_combinations(folders, args, message):
  _, eval_dir = folders
  r = run_module('evaluate', f'--data={eval_dir}', *args)
  assert r.returncode == 2, r.stderr
  assert message in r.stderr and 'Traceback' not in r.stderr
  assert len(r.stderr.strip().splitlines()) == 1


def test_missing_folder_names_it(folders, tmp_path):
  _, eval_dir = folders
  missing = tmp_path / 'Set15'
  r = run_module('evaluate', '--method=bicubic',
                 f'--data={eval_dir},{missing}')
  assert r.returncode == 2
  assert str(missing) in r.stderr and 'Traceback' not in r.stderr
  r = run_module('evaluate', '--method=bicubic',
                 f'--data={missing}', '--verbose')
  assert r.returncode != 0 and 'Traceback' in r.stderr


def test_folder_without_images_names_it(tmp_path):
  (tmp_path / 'empty').mkdir()
  r = run_module('evaluate', '--method=bicubic',
                 f'--data={tmp_path / "empty"}')
  assert r.returncode == 2
  assert str(tmp_path / 'empty') in r.stderr and 'no images' in r.stderr
  assert 'Traceback' not in r.stderr


def test_clashing_folder_names_get_their_parent(tmp_path, folders):
  _, eval_dir = folders
  for parent in ('A', 'B'):
    (tmp_path / parent).mkdir()
    (tmp_path / parent / 'HR').symlink_to(eval_dir)
  found = folders_lib.resolve_folders(f'{tmp_path}/A/HR,{tmp_path}/B/HR')
  assert [f.name for f in found] == ['A/HR', 'B/HR']
  assert [len(f.images) for f in found] == [2, 2]


# -------------------------------------------------------- trained models --

def test_workdir_evaluates_with_uncertainty(workdir, folders, tmp_path):
  _, eval_dir = folders
  out = tmp_path / 'model.json'
  r = run_module('evaluate', f'--workdir={workdir}',
                 f'--data={eval_dir}', '--scale=4', f'--json={out}',
                 '--tile=8')
  assert r.returncode == 0, r.stderr[-3000:]
  result = json.loads(out.read_text())
  entry = result['Synth']
  assert set(entry) == ENTRY_KEYS | UNCERTAINTY_KEYS | {
      'step', 'uncertainty', 'error_channel_correlation_of'}
  assert entry['error_channel_correlation_of'].startswith(
      'standardised errors e/sigma, pooled')
  quality = entry['uncertainty']
  assert set(quality) == {'units', 'y', 'rgb', 'y_correlation',
                          'y_correlation_from', 'error_channel_correlation',
                          'aggregation', 'pooled_share', 'undefined'}
  assert quality['y_correlation_from'].startswith('assumed')
  assert (quality['error_channel_correlation'] ==
          entry['error_channel_correlation'])
  assert quality['aggregation'] == 'pooled'
  assert quality['y_correlation'] == 1.0      # The default: full.
  assert -1 <= entry['error_channel_correlation'] <= 1
  for channel in ('y', 'rgb'):
    q = quality[channel]
    assert {'nll', 'ause', 'aurg', 'auce', 'coverage_50', 'coverage_80',
            'coverage_90', 'coverage_95', 'spearman', 'rmse',
            'mean_sigma'} <= set(q)
    assert 0 <= q['coverage_50'] <= q['coverage_80'] <= q['coverage_90'] <= (
        q['coverage_95']) <= 1
    assert 0 <= q['auce'] <= 0.5 and -1 <= q['spearman'] <= 1
  # The flat rmse_grey is a mean over the two images, the pooled RGB RMSE
  # that of all their pixels: equal only if both images' RMSEs are.
  assert quality['rgb']['rmse'] != entry['rmse_grey']
  assert quality['rgb']['rmse'] == pytest.approx(entry['rmse_grey'], rel=0.1)
  assert 'uncertainty quality, Y channel' in r.stdout
  assert entry['images'] == 2 and entry['step'] == 10
  assert entry['convention'] == 'standard'
  for k in UNCERTAINTY_KEYS:
    assert math.isfinite(entry[k]), k
  assert 0 < entry['sigma_rgb_median_grey']
  assert 0 < entry['sigma_rgb_mean_grey']
  assert 10 < entry['psnr'] < 60 and 0 < entry['ssim'] <= 1
  assert 'step 10' in r.stdout and 'sigma RGB grey' in r.stdout
  assert 'sigma_Y' in r.stdout
  assert 'R, G, B errors of correlation 1' in r.stdout
  # An older checkpoint by --step.
  r = run_module('evaluate', f'--workdir={workdir}', '--step=5',
                 f'--data={eval_dir}', f'--json={out}')
  assert r.returncode == 0, r.stderr[-3000:]
  assert json.loads(out.read_text())['Synth']['step'] == 5


def test_y_correlation_changes_only_the_y_figures(workdir, folders):
  """Independent channel errors give a smaller sigma_Y (|a| instead of
  sum(a) for a_c = w_c sigma_c: at least 1/sqrt(3) of it) and so a lower Y
  coverage; the RGB figures do not depend on the assumption."""
  _, eval_dir = folders
  predictor = inference.load(workdir)
  got = {rho: evaluation.evaluate_image(
      eval_dir / 'a.png', Protocol(4, y_correlation=rho), predictor)
         for rho in (1.0, 0.0)}
  assert got[1.0].quality['rgb'] == got[0.0].quality['rgb']
  full, none = got[1.0].quality['y'], got[0.0].quality['y']
  assert full['rmse'] == none['rmse']
  assert none['mean_sigma'] < full['mean_sigma']
  assert none['mean_sigma'] >= full['mean_sigma'] / math.sqrt(3) * (1 - 1e-9)
  assert none['coverage_90'] <= full['coverage_90']


def test_pipeline_by_hand(workdir, folders):
  """evaluate_image == HR crop -> uint8 LR -> model -> rounded mean."""
  _, eval_dir = folders
  predictor = inference.load(workdir)
  path = eval_dir / 'a.png'
  got = evaluation.evaluate_image(path, Protocol(4, tile=8), predictor)
  hr = data_lib.load_image(path)[:52, :60]
  lr = np.clip(np.round(imresize.imresize(hr / 255, 0.25) * 255), 0, 255)
  # The same tiles as evaluate_image: an untiled pass may differ by float
  # rounding, enough to flip a pixel's rounding to uint8 (tiling's exactness
  # to rounding is tested in test_inference).
  mean, log_var = predictor(lr / 255, tile=8)
  mean = np.asarray(mean, np.float64)  # Rounded in float64, as documented.
  sr = np.clip(np.round((mean + 1) * 127.5), 0, 255).astype(np.uint8)
  psnr, ssim = metrics.measure(sr, hr, scale=4)
  assert got.psnr == pytest.approx(psnr, abs=1e-6)
  assert got.ssim == pytest.approx(ssim, abs=1e-6)
  sigma = np.sqrt(np.exp(log_var.astype(np.float64)).mean(-1)) * 127.5
  assert got.uncertainty['sigma_rgb_median_grey'] == pytest.approx(
      np.median(sigma[4:-4, 4:-4]), rel=1e-4)


@pytest.mark.parametrize('args,message', [
    (['--scale=3'], '--scale=3'),
    (['--step=7'], '--step=7'),
])
def test_workdir_errors(workdir, folders, args, message):
  _, eval_dir = folders
  r = run_module('evaluate', f'--workdir={workdir}',
                 f'--data={eval_dir}', *args)
  assert r.returncode == 2, r.stderr[-3000:]
  assert message in r.stderr and 'Traceback' not in r.stderr


def test_workdir_without_checkpoints(folders, tmp_path):
  _, eval_dir = folders
  r = run_module('evaluate', f'--workdir={tmp_path}',
                 f'--data={eval_dir}')
  assert r.returncode == 2
  assert str(tmp_path) in r.stderr and 'checkpoints' in r.stderr
  assert 'Traceback' not in r.stderr


# --------------------------------------------------------------- report --

def test_report_writes_the_table(workdir, folders, tmp_path):
  _, eval_dir = folders
  out = tmp_path / 'table.md'
  r = run_module('report', f'--models=mse={workdir},gram={workdir}',
                 f'--data={eval_dir}', '--baseline=mse', f'--out={out}',
                 '--tile=16')
  assert r.returncode == 0, r.stderr[-3000:]
  table = out.read_text()
  assert table in r.stdout
  lines = table.splitlines()
  caption = lines[0]
  assert "convention 'standard'" in caption and '4 px' in caption
  assert 'Y channel' in caption and '11x11 Gaussian' in caption
  assert 'mse = ' in caption and 'step 10' in caption
  assert lines[2] == '| Dataset | Bicubic | mse | gram |'
  row = lines[4].split(' | ')
  assert row[0] == '| Synth'
  # Same model twice: the difference from the baseline is zero.
  assert row[3].endswith('(+0.00/+0.0000) |')
  assert '(' not in row[1] + row[2]
  raw = json.loads(out.with_suffix('.json').read_text())
  assert list(raw) == ['Bicubic', 'mse', 'gram']
  assert raw['mse']['Synth']['step'] == 10
  assert raw['gram']['Synth']['psnr'] == raw['mse']['Synth']['psnr']
  assert raw['Bicubic']['Synth']['images'] == 2
  # Uncertainty tables (both models predict sigma) and linked pictures.
  for channel in ('Y channel', 'RGB'):
    assert f'Uncertainty quality, {channel}' in table
  assert '| Synth | mse | ' in table and '| Synth | gram | ' in table
  links = re.findall(r'!\[[^]]*\]\(([^)]+)\)', table)
  assert sorted(pathlib.Path(l).name for l in links) == [
      'comparison_Synth.png', 'reliability_Synth.png',
      'sparsification_Synth.png']
  for link in links:
    assert (out.parent / link).is_file(), link
  assert Image.open(out.parent / links[-1]).width > 6 * 96  # 2 models.


def test_report_cells_and_signs():
  columns = {
      'Bicubic': {'Set5': {'psnr': 28.4189, 'ssim': 0.81024}},
      'mse': {'Set5': {'psnr': 31.8651, 'ssim': 0.88851}},
      'mle': {'Set5': {'psnr': 31.4349, 'ssim': 0.88344}},
      'gram': {'Set5': {'psnr': 31.9249, 'ssim': 0.88801}},
  }
  table = tables.markdown_table(columns, baseline='mse', caption='cap')
  row = table.splitlines()[-1]
  assert row == ('| Set5 | 28.42/0.8102 | 31.87/0.8885 | '
                 '31.43/0.8834 (-0.44/-0.0051) | '
                 '31.92/0.8880 (+0.05/-0.0005) |')


@pytest.mark.parametrize('models,extra,message', [
    ('mse', [], "'mse' is not NAME=WORKDIR"),
    ('a=x,a=y', [], "'a' is used twice"),
    ('a=W', ['--baseline=b'], '--baseline=b'),
    ('a=W', ['--out=t.json'], '--out='),
])
def test_report_errors(workdir, folders, models, extra, message, tmp_path):
  _, eval_dir = folders
  models = models.replace('W', str(workdir))
  args = [f'--models={models}', f'--data={eval_dir}', *extra]
  if not any(a.startswith('--out') for a in extra):
    args.append(f'--out={tmp_path / "t.md"}')
  r = run_module('report', *args)
  assert r.returncode == 2, r.stderr[-3000:]
  assert message in r.stderr and 'Traceback' not in r.stderr


def test_mse_models_report_no_uncertainty():
  """SRResNet* (plain MSE) never trains its variance head: no sigma keys."""
  c = demo_config.get_config()
  predicts = inference.Predictor.predicts_uncertainty.fget
  assert predicts(types.SimpleNamespace(config=c, mean_only=False))
  assert not predicts(types.SimpleNamespace(config=c, mean_only=True))
  c.loss.name = 'mse'
  assert not predicts(types.SimpleNamespace(config=c, mean_only=False))
  entry, curves = folders_lib.folder_entry(
      [evaluation.ImageResult('a.png', 30.0, 0.9, False)], Protocol(4), step=7)
  assert curves is None
  assert entry == {'psnr': 30.0, 'ssim': 0.9, 'images': 1,
                   'convention': 'standard', 'step': 7}


# ---------------------------------------------------------- aggregation --

def test_pooled_and_per_image_aggregation(workdir, folders):
  """Pooled figures are those of all pixels together: the pooled RGB RMSE
  is the pixel-weighted root mean square of the images' RMSEs, which the
  per-image mean is not; every entry names its aggregation."""
  _, eval_dir = folders
  folder = folders_lib.resolve_folders(str(eval_dir))[0]
  predictor = inference.load(workdir)
  protocol = Protocol(4, tile=0)
  measured = folders_lib.evaluate_folder(folder, protocol, predictor,
                                         quiet=True)
  pooled, results = measured.entry, measured.images
  assert all(r.quality == {} for r in results)   # Not needed when pooled.
  by_image = folders_lib.evaluate_folder(
      folder, dataclasses.replace(protocol, aggregation='per_image'),
      predictor, quiet=True)
  per_image, image_results = by_image.entry, by_image.images
  # Curves of the pooled pixels, or the mean of the images' curves.
  pooled_y = folders_lib.pooled_residuals(results, 'y')
  np.testing.assert_array_equal(
      measured.curves.sparsification.model,
      uncertainty.sparsification_curves(pooled_y).model)
  np.testing.assert_allclose(
      by_image.curves.calibration.observed,
      np.mean([r.curves['y'].calibration.observed for r in image_results],
              axis=0))
  assert pooled['uncertainty']['aggregation'] == 'pooled'
  assert pooled['uncertainty']['pooled_share'] == 1.0
  assert per_image['uncertainty']['aggregation'] == 'per_image'
  sizes = [r.samples['rgb'][0].size for r in results]
  rmses = [r.quality['rgb']['rmse'] for r in image_results]
  assert len(set(sizes)) > 1                    # Images of unequal sizes.
  assert pooled['uncertainty']['rgb']['rmse'] == pytest.approx(
      math.sqrt(np.dot(sizes, np.square(rmses)) / sum(sizes)), rel=1e-5)
  assert per_image['uncertainty']['rgb']['rmse'] == pytest.approx(
      np.mean(rmses))
  assert pooled['uncertainty']['rgb']['mace'] >= 0
  # Above pool_values every image gives the same share of its values.
  capped = folders_lib.evaluate_folder(folder, protocol, predictor,
                                       quiet=True,
                                       pool_values=sum(sizes) // 4)
  results = capped.images
  share = capped.entry['uncertainty']['pooled_share']
  assert capped.pool_rate == share
  files = sum(np.prod(Image.open(p).size) * 3 for p in folder.images)
  assert share == pytest.approx((sum(sizes) // 4) / files)  # Header sizes.
  assert share < 0.25
  for r, n in zip(results, sizes):
    assert r.samples['rgb'][0].size == pytest.approx(share * n, rel=0.1)


def test_undefined_metrics_are_counted_not_dropped_silently(caplog):
  def result(name, err, sigma):
    q = summary.summarize(err, sigma)
    return evaluation.ImageResult(
        name, 30.0, 0.9, False, {'nll_grey': 1.0}, {'y': q},
        samples={'y': (err.astype(np.float32), sigma.astype(np.float32))})
  rng = np.random.default_rng(0)
  err = rng.normal(0, 2, 50)
  results = [result('a.png', err, np.abs(err) + 1),
             result('flat.png', err, np.full(50, 2.0))]  # Spearman: NaN.
  entry, _ = folders_lib.folder_entry(results,
                                     Protocol(4, aggregation='per_image'))
  assert entry['uncertainty']['undefined'] == {'y/spearman': 1}
  assert entry['uncertainty']['y']['spearman'] == pytest.approx(1.0)
  assert 'y/spearman undefined on 1 of 2 images' in caplog.text
  table = tables.format_table({'F': entry}, title='t', caption='c')
  assert 'y/spearman on 1 image(s) of F' in table
  pooled, _ = folders_lib.folder_entry(results, Protocol(4))
  assert pooled['uncertainty']['undefined'] == {}
  assert math.isfinite(pooled['uncertainty']['y']['spearman'])
  assert 'pooled over all pixels' in tables.format_table(
      {'F': pooled}, title='t', caption='c')


# -------------------------------------------------------- recalibration --

QUALITY_FIELDS = {'nll', 'ause', 'auce', 'coverage_90', 'spearman', 'mace',
                  'rmsce', 'miscal_area', 'sharpness'}


@pytest.fixture(scope='module')
def calibrated(workdir, folders, tmp_path_factory):
  """A copy of the workdir with a sigma-scaling recalibration fitted by
  ``evaluate --calibrate_on`` on two images of their own, and its run."""
  _, eval_dir = folders
  root = tmp_path_factory.mktemp('calibrated')
  copy = root / 'workdir'
  shutil.copytree(workdir, copy)
  calib = root / 'calib'
  calib.mkdir()
  rng = np.random.default_rng(5)
  for name in ('c1.png', 'c2.png'):
    Image.fromarray(smooth_image(rng, 56, 64)).save(calib / name)
  out = root / 'eval.json'
  r = run_module('evaluate', f'--workdir={copy}', f'--calibrate_on={calib}',
                 f'--data={eval_dir}', f'--json={out}', '--tile=16')
  assert r.returncode == 0, r.stderr[-3000:]
  return types.SimpleNamespace(workdir=copy, calib=calib, run=r,
                               entry=json.loads(out.read_text())['Synth'],
                               root=root)


def test_calibrate_on_stores_the_fit_and_reports_before_and_after(
    calibrated, folders):
  saved = json.loads((calibrated.workdir / 'calibration.json').read_text())
  assert saved['method'] == 'sigma_scaling'
  assert saved['fitted_on'] == str(calibrated.calib)
  predictor = inference.load(calibrated.workdir)
  assert saved['model'] == predictor.model_key() and saved['model'][
      'step'] == 10
  assert saved['images'] == [
      {'name': n, 'sha256': data_lib.content_digest(data_lib.load_image(
          calibrated.calib / n))} for n in ('c1.png', 'c2.png')]
  # The Y correlation: of the standardised errors, pooled, by hand.
  folder = folders_lib.resolve_folders(str(calibrated.calib))[0]
  rgb = folders_lib.evaluate_folder(folder, Protocol(4), predictor,
                                    quiet=True).images
  z = np.concatenate([np.divide(*r.samples['rgb']).reshape(-1, 3)
                      for r in rgb])
  c = np.corrcoef(z.T)
  assert saved['y_correlation'] == pytest.approx(   # float32 samples.
      (c[0, 1] + c[0, 2] + c[1, 2]) / 3, rel=1e-6)
  # The fitted factor, by hand from the calibration images' pooled values
  # (Y under that correlation).
  results = folders_lib.evaluate_folder(
      folder, Protocol(4, y_correlation=saved['y_correlation']), predictor,
      quiet=True).images
  for channel in ('rgb', 'y'):
    res = folders_lib.pooled_residuals(results, channel)
    err, sig = res.err, res.sigma
    assert saved['values'][channel]['scale'] == pytest.approx(
        math.sqrt(np.mean((err / sig) ** 2)), rel=1e-6)
  entry = calibrated.entry
  assert entry['calibration'] == {
      'method': 'sigma_scaling', 'fitted_on': str(calibrated.calib),
      'images': 2, 'step': 10, 'weights_digest': predictor.digest,
      'y_correlation': saved['y_correlation'],
      'values': {c: {'scale': saved['values'][c]['scale']}
                 for c in ('rgb', 'y')}}
  # The folder's Y figures use the calibration's correlation, and say so.
  assert entry['uncertainty']['y_correlation'] == saved['y_correlation']
  assert entry['uncertainty']['y_correlation_from'] == (
      f'measured on the calibration images ({calibrated.calib})')
  before, after = entry['uncertainty'], entry['uncertainty_calibrated']
  assert set(after) == set(before)
  for channel in ('rgb', 'y'):
    assert QUALITY_FIELDS <= set(after[channel])
    s = saved['values'][channel]['scale']
    assert after[channel]['mean_sigma'] == pytest.approx(
        s * before[channel]['mean_sigma'], rel=1e-6)
    for key in ('ause', 'spearman', 'rmse'):
      assert after[channel][key] == pytest.approx(before[channel][key])
  out = calibrated.run.stdout
  assert 'Synth (sigma scaling)' in out and 'uncertainty quality, RGB' in out
  assert f'sigma scaling fitted on {calibrated.calib} at step 10' in out


def test_stored_calibration_used_by_default_and_turned_off(calibrated,
                                                           folders, tmp_path):
  _, eval_dir = folders
  out = tmp_path / 'e.json'
  r = run_module('evaluate', f'--workdir={calibrated.workdir}',
                 f'--data={eval_dir}', f'--json={out}', '--tile=16')
  assert r.returncode == 0, r.stderr[-3000:]
  entry = json.loads(out.read_text())['Synth']
  for channel in ('rgb', 'y'):
    assert entry['uncertainty_calibrated'][channel] == pytest.approx(
        calibrated.entry['uncertainty_calibrated'][channel])
  r = run_module('evaluate', f'--workdir={calibrated.workdir}',
                 '--norecalibrate', f'--data={eval_dir}', f'--json={out}')
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'uncertainty_calibrated' not in json.loads(out.read_text())['Synth']
  # Fitted on the weights of step 10: refused for step 5's, in one line
  # that says how to go on.
  r = run_module('evaluate', f'--workdir={calibrated.workdir}', '--step=5',
                 f'--data={eval_dir}', f'--json={out}')
  assert r.returncode == 2
  (line,) = error_lines(r.stderr)
  assert line.startswith(f'error: {calibrated.workdir / "calibration.json"} '
                         'was fitted on other weights (step 10, ')
  assert line.endswith(f'Fit it again (python -m gramjax.evaluate '
                       f'--workdir={calibrated.workdir} --calibrate_on=DIR),'
                       ' or pass --norecalibrate')


def test_report_and_predict_use_the_stored_calibration(calibrated, folders,
                                                       tmp_path):
  _, eval_dir = folders
  md = tmp_path / 't.md'
  r = run_module('report', f'--models=gram={calibrated.workdir}',
                 f'--data={eval_dir}', f'--out={md}', '--no_figures')
  assert r.returncode == 0, r.stderr[-3000:]
  assert '| Synth | gram (sigma scaling) |' in md.read_text()
  scale = json.loads((calibrated.workdir / 'calibration.json').read_text()
                     )['values']['rgb']['scale']
  logs = {}
  for flag in ('--recalibrate', '--norecalibrate'):
    outdir = tmp_path / flag
    r = run_module('predict', f'--workdir={calibrated.workdir}',
                   f'--input={eval_dir / "a.png"}', f'--output={outdir}',
                   flag)
    assert r.returncode == 0, r.stderr[-3000:]
    logs[flag] = np.load(outdir / 'a_log_var.npy')
    assert ('uncertainty map recalibrated' in r.stderr + r.stdout) == (
        flag == '--recalibrate')
    with Image.open(outdir / 'a_uncertainty.png') as im:
      holds = im.info['holds']
    assert holds.startswith(f'sigma x {scale:.4g}, sigma_scaling fitted on'
                            if flag == '--recalibrate' else 'raw sigma')
  # The .npy is the raw log-variance either way.
  np.testing.assert_array_equal(logs['--recalibrate'],
                                logs['--norecalibrate'])


def test_isotonic_recalibration_through_the_command(calibrated, folders,
                                                    tmp_path):
  _, eval_dir = folders
  work = tmp_path / 'w'
  shutil.copytree(calibrated.workdir, work)
  out = tmp_path / 'e.json'
  r = run_module('evaluate', f'--workdir={work}',
                 f'--calibrate_on={calibrated.calib}',
                 '--calibration_method=isotonic', f'--data={eval_dir}',
                 f'--json={out}')
  assert r.returncode == 0, r.stderr[-3000:]
  saved = json.loads((work / 'calibration.json').read_text())
  assert saved['method'] == 'isotonic'
  q = saved['values']['rgb']['quantiles']
  assert len(q) == 1001 and q == sorted(q)
  after = json.loads(out.read_text())['Synth']['uncertainty_calibrated']
  assert math.isnan(after['rgb']['nll'])
  assert 0 <= after['rgb']['coverage_90'] <= 1
  # predict cannot draw an isotonic fit as one sigma: refused, not
  # mislabelled.
  r = run_module('predict', f'--workdir={work}',
                 f'--input={eval_dir / "a.png"}', f'--output={tmp_path / "p"}')
  assert r.returncode == 2
  (line,) = error_lines(r.stderr)
  assert 'holds an isotonic recalibration' in line and (
      '--norecalibrate' in line)
  assert not (tmp_path / 'p').exists()


def test_calibrating_on_a_test_folder_is_refused(calibrated, folders):
  _, eval_dir = folders
  r = run_module('evaluate', f'--workdir={calibrated.workdir}',
                 f'--calibrate_on={eval_dir}',
                 f'--data={eval_dir},{calibrated.calib}')
  assert r.returncode == 2
  (line,) = error_lines(r.stderr)
  assert f'--calibrate_on={eval_dir}' in line and (
      'share 2 image(s) by content' in line) and '--allow_in_sample' in line
  r = run_module('evaluate', '--method=bicubic',
                 f'--calibrate_on={calibrated.calib}', f'--data={eval_dir}')
  assert r.returncode == 2 and '--calibrate_on' in r.stderr


def test_heldout_images_are_the_ones_recorded_when_training_started(
    folders, tmp_path):
  train_dir, _ = folders
  train = tmp_path / 'train'
  shutil.copytree(train_dir, train)
  config = demo_config.get_config()
  config.data.train_dir = str(train)
  config.data.holdout = 2
  work = tmp_path / 'w'
  work.mkdir()
  heldout.record(work, config.data)
  fitted_on, images = recalibrate.calibration_images('heldout', work)
  assert [p.name for p in images] == ['1.png', '3.png']
  assert fitted_on.startswith('heldout: 2 images held out of training by ')
  # A file added to the training folder moves the positions, not the
  # record: the same images stay held out.
  shutil.copy(train / '0.png', train / '00.png')
  assert data_lib.held_out_images(config.data) != images
  assert recalibrate.calibration_images('heldout', work)[1] == images
  # A held-out image changed or removed since: refused, naming it.
  Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(train / '3.png')
  with pytest.raises(UserError, match=r'held-out image .*3.png has changed'):
    recalibrate.calibration_images('heldout', work)
  (train / '3.png').unlink()
  with pytest.raises(UserError, match=r'held-out image .*3.png has vanished'):
    recalibrate.calibration_images('heldout', work)
  with pytest.raises(UserError, match='recorded no held-out images'):
    recalibrate.calibration_images('heldout', tmp_path)


def test_a_slice_of_the_heldout_images_validates_another_calibrates(
    folders, tmp_path):
  """heldout[:1] and heldout[1:] split the record in its order; a bad or
  empty slice is refused, naming the flag."""
  train_dir, _ = folders
  config = demo_config.get_config()
  config.data.train_dir = str(train_dir)
  config.data.holdout = 3
  heldout.record(tmp_path, config.data)
  every = [p.name for p in recalibrate.calibration_images('heldout',
                                                          tmp_path)[1]]
  assert len(every) == 3
  first = recalibrate.calibration_images('heldout[:1]', tmp_path)
  rest = recalibrate.calibration_images('heldout[1:]', tmp_path)
  assert [p.name for p in first[1]] == every[:1]
  assert [p.name for p in rest[1]] == every[1:]
  assert rest[0].startswith('heldout[1:]: 2 images held out of training')
  assert heldout.select(list('abcde'), 'heldout[-2:]', 'k') == ['d', 'e']
  for spec, why in (('heldout[1]', 'give heldout or a slice of it'),
                    ('heldout[:a]', 'give heldout or a slice of it'),
                    ('heldouts', 'give heldout or a slice of it'),
                    ('heldout[3:]', 'selects none of the 3 held-out')):
    with pytest.raises(UserError, match=re.escape(f'--calibrate_on={spec}: '
                                                  f'{why}')):
      recalibrate.calibration_images(spec, tmp_path, key='--calibrate_on')


def test_calibration_runs_the_model_once_per_image(workdir, folders,
                                                   monkeypatch):
  """The Y pass reuses the RGB pass's outputs: one forward per image, and
  the same fit as when every output is computed again."""
  _, eval_dir = folders
  images = sorted(eval_dir.iterdir())
  predictor = inference.load(workdir)
  calls = []

  class Counting:
    def __getattr__(self, name):
      return getattr(predictor, name)

    def __call__(self, lr, tile=128):
      calls.append(lr.shape)
      return predictor(lr, tile=tile)

  fit = lambda: recalibrate.fit_recalibration(
      Counting(), images, Protocol(4), method='sigma_scaling',
      fitted_on=str(eval_dir), quiet=True)
  once = fit()
  assert len(calls) == len(images)
  monkeypatch.setattr(recalibrate, 'REMEMBER_BYTES', 0)
  calls.clear()
  again = fit()
  assert len(calls) == 2 * len(images)
  assert once.values == again.values
  assert once.y_correlation == again.y_correlation


def test_a_copy_of_a_calibration_image_elsewhere_is_found_by_content(
    folders, tmp_path):
  train_dir, _ = folders
  other = tmp_path / 'other'
  other.mkdir()
  # The same pixels under another name and in another lossless format.
  Image.open(train_dir / '3.png').save(other / 'copy.bmp')
  shutil.copy(train_dir / '1.png', other / 'x.png')
  Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(other / 'new.png')
  digests = recalibrate.image_digests([train_dir / '1.png',
                                       train_dir / '3.png'])
  test = folders_lib.resolve_folders(str(other))
  assert recalibrate.shared_images(digests, test) == {
      'other': ['copy.bmp', 'x.png']}
  recal = types.SimpleNamespace(images=digests, fitted_on='cal')
  with pytest.raises(UserError, match=r'the calibration images \(cal\) and '
                     r'the test folder other share 2 image\(s\) by content '
                     r'\(e.g. copy.bmp\)'):
    recalibrate.check_disjoint(recal, test)
  assert recalibrate.check_disjoint(recal, test, allow_in_sample=True) == {
      'other': ['copy.bmp', 'x.png']}
