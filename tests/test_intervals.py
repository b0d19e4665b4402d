"""Conformal intervals through the commands (gramjax.evaluation.intervals,
gramjax.evaluate --calibration_method=crc|rcps, predict's interval map):
the fit is the library's exact lambda on the calibration images, bound to
the weights it was fitted on, kept off its own images by content; the
held-out record written by training."""

import json
import shutil
import types

import numpy as np
import pytest
from PIL import Image

from gramjax import data as data_lib
from gramjax.core import pixels
from gramjax.evaluation import folders as folders_lib
from gramjax.evaluation import intervals
from gramjax.evaluation.protocol import Protocol
from gramjax.inference import predictor as inference
from gramjax.metrics import conformal
from gramjax.training import loop as train
from tests.conftest import (error_lines, run_module, smooth_image,
                            tiny_model_config)

ALPHA, DELTA = 0.3, 0.3


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  """A tiny model (holding one training image out), eight calibration
  images, a test folder of two, and a second model of the same steps but
  other weights."""
  root = tmp_path_factory.mktemp('intervals')
  rng = np.random.default_rng(11)
  dirs = {name: root / name for name in ('train', 'calib', 'test')}
  for d in dirs.values():
    d.mkdir()
  for i in range(4):
    Image.fromarray(smooth_image(rng, 64, 64)).save(dirs['train'] / f'{i}.png')
  for i in range(8):
    Image.fromarray(smooth_image(rng, 40, 48)).save(dirs['calib'] / f'c{i}.png')
  for name in ('a.png', 'b.png'):
    Image.fromarray(smooth_image(rng, 44, 52)).save(dirs['test'] / name)
  work, other = root / 'w', root / 'other'
  train.train_and_evaluate(
      tiny_model_config(dirs['train'], **{'data.holdout': 1}), work)
  train.train_and_evaluate(tiny_model_config(dirs['train'], seed=1), other)
  return types.SimpleNamespace(root=root, work=work, other=other, **dirs)


def calibrate(setup, tmp_path, method, *extra):
  work = tmp_path / 'w'
  shutil.copytree(setup.work, work)
  out = tmp_path / 'e.json'
  r = run_module('evaluate', f'--workdir={work}',
                 f'--calibrate_on={setup.calib}',
                 f'--calibration_method={method}', f'--alpha={ALPHA}',
                 f'--delta={DELTA}', f'--data={setup.test}',
                 f'--json={out}', '--tile=0', *extra)
  assert r.returncode == 0, r.stderr[-3000:]
  return work, json.loads((work / 'calibration.json').read_text()), (
      json.loads(out.read_text())['test'])


@pytest.mark.parametrize('method', ['crc', 'rcps'])
def test_evaluate_fits_the_exact_lambda_and_reports_its_risk(
    setup, tmp_path, method):
  work, saved, entry = calibrate(setup, tmp_path, method)
  interval = saved['interval']
  assert saved['method'] == method and interval['n'] == 8
  assert interval['alpha'] == ALPHA
  assert interval['delta'] == (DELTA if method == 'rcps' else None)
  # The library's lambda on the calibration images, measured again here.
  predictor = inference.load(work)
  folder = folders_lib.resolve_folders(str(setup.calib))[0]
  protocol = Protocol(4, tile=0, y_correlation=saved['y_correlation'])
  results = folders_lib.evaluate_folder(folder, protocol, predictor,
                                        quiet=True).images
  for channel in ('rgb', 'y'):
    ratios = intervals.image_ratios(results, channel)
    assert interval['lambda'][channel] == pytest.approx(
        conformal.fit(method, ratios, ALPHA, DELTA), rel=1e-6)
    flat = intervals.image_ratios(results, channel, constant=True)
    assert interval['constant_width_grey'][channel] == pytest.approx(
        conformal.fit(method, flat, ALPHA, DELTA), rel=1e-6)
  got = entry['interval_calibrated']
  assert (got['method'], got['alpha'], got['calibration_images']) == (
      method, ALPHA, 8)
  test = folders_lib.evaluate_folder(
      folders_lib.resolve_folders(str(setup.test))[0], protocol, predictor,
      quiet=True).images
  for channel in ('rgb', 'y'):
    c, lam = got[channel], interval['lambda'][channel]
    assert c['lambda'] == lam
    # By hand from the test images' values: the per-image shares outside,
    # their mean (the risk) and the pooled coverage.
    outside = [np.abs(r.samples[channel][0]) > lam * r.samples[channel][1]
               for r in test]
    assert c['risk'] == pytest.approx(np.mean([o.mean() for o in outside]))
    assert c['coverage'] == pytest.approx(
        1 - np.concatenate(outside).mean())
    assert c['frac_images_risk_le_alpha'] == np.mean(
        [o.mean() <= ALPHA for o in outside])
    assert len(c['risk_by_sigma_quartile']) == 4
    assert c['constant_width']['mean_halfwidth_grey'] == pytest.approx(
        interval['constant_width_grey'][channel])
  assert 'uncertainty_calibrated' not in entry
  assert entry['calibration']['interval']['lambda'] == interval['lambda']


def test_predict_draws_the_interval_and_keeps_the_raw_log_variance(
    setup, tmp_path):
  work, saved, _ = calibrate(setup, tmp_path, 'crc')
  out = tmp_path / 'p'
  r = run_module('predict', f'--workdir={work}',
                 f'--input={setup.test / "a.png"}', f'--output={out}')
  assert r.returncode == 0, r.stderr[-3000:]
  assert (f'interval map: 70 % interval, CRC on 8 images of {setup.calib}'
          in r.stderr)
  assert 'a_interval.png' in r.stdout
  log_var = np.load(out / 'a_log_var.npy')
  half = np.load(out / 'a_interval.npy')
  lam = saved['interval']['lambda']['rgb']
  np.testing.assert_allclose(half, lam * pixels.GREY_PER_UNIT
                             * np.exp(log_var / 2), rtol=1e-5)
  with Image.open(out / 'a_interval.png') as im:
    assert im.info['holds'].startswith('70 % interval, CRC on 8 images')
  with Image.open(out / 'a_uncertainty.png') as im:
    assert im.info['holds'].startswith('raw sigma')
  # The raw .npy is what --norecalibrate writes too.
  r = run_module('predict', f'--workdir={work}', '--norecalibrate',
                 f'--input={setup.test / "a.png"}', f'--output={out}2')
  assert r.returncode == 0, r.stderr[-3000:]
  np.testing.assert_array_equal(np.load(f'{out}2/a_log_var.npy'), log_var)
  assert not (tmp_path / 'p2' / 'a_interval.png').exists()


def test_a_copied_calibration_is_refused_on_other_weights(setup, tmp_path):
  _, saved, _ = calibrate(setup, tmp_path, 'crc')
  other = tmp_path / 'other'
  shutil.copytree(setup.other, other)
  shutil.copy(tmp_path / 'w' / 'calibration.json', other)
  assert inference.load(other).step == saved['model']['step']  # Same step.
  runs = [('evaluate', f'--workdir={other}', f'--data={setup.test}'),
          ('predict', f'--workdir={other}', f'--input={setup.test}',
           f'--output={tmp_path / "out"}'),
          ('report', f'--models=x={other}', f'--data={setup.test}',
           f'--out={tmp_path / "t.md"}', '--no_figures')]
  for args in runs:
    r = run_module(*args)
    assert r.returncode == 2, (args[0], r.stderr[-2000:])
    (line,) = error_lines(r.stderr)
    assert 'calibration.json was fitted on other weights (step 10' in line
    assert '--calibrate_on=DIR), or pass --norecalibrate' in line
  assert not (tmp_path / 'out').exists()


def test_a_test_folder_sharing_calibration_content_is_refused_or_marked(
    setup, tmp_path):
  work, _, _ = calibrate(setup, tmp_path, 'crc')
  mixed = tmp_path / 'mixed'
  mixed.mkdir()
  Image.open(setup.calib / 'c3.png').save(mixed / 'renamed.bmp')
  shutil.copy(setup.test / 'a.png', mixed)
  r = run_module('evaluate', f'--workdir={work}', f'--data={mixed}')
  assert r.returncode == 2
  (line,) = error_lines(r.stderr)
  assert 'share 1 image(s) by content (e.g. renamed.bmp)' in line
  out = tmp_path / 'in.json'
  r = run_module('evaluate', f'--workdir={work}', f'--data={mixed}',
                 '--allow_in_sample', f'--json={out}')
  assert r.returncode == 0, r.stderr[-3000:]
  entry = json.loads(out.read_text())['mixed']
  assert entry['in_sample'] is True
  assert entry['in_sample_images'] == ['renamed.bmp']


def test_training_records_its_held_out_images(setup):
  record = json.loads((setup.work / 'heldout.json').read_text())
  (image,) = record['images']
  held = data_lib.held_out_images(inference.load(setup.work).config.data)
  assert [image['name']] == [p.name for p in held]
  assert image['sha256'] == data_lib.content_digest(
      data_lib.load_image(held[0]))


def test_split_study_is_seeded_and_reports_every_method(setup, tmp_path):
  outs = []
  for i in range(2):
    out = tmp_path / f's{i}.json'
    r = run_module('evaluate', f'--workdir={setup.work}',
                   f'--data={setup.calib}', '--conformal_splits=15',
                   '--alpha=0.4', '--delta=0.3', f'--json={out}',
                   '--tile=0')
    assert r.returncode == 0, r.stderr[-3000:]
    outs.append(json.loads(out.read_text())['calib']['conformal'])
  assert outs[0] == outs[1]
  study = outs[0]
  assert (study['splits'], study['calibration_images'],
          study['test_images'], study['alpha']) == (15, 4, 4, 0.4)
  for method in ('crc', 'rcps', 'constant_width'):
    m = study[method]
    assert 0 <= m['uncertified_splits'] <= 15
    if 'mean_risk' in m:
      assert 0 <= m['frac_risk_le_alpha'] <= 1
      assert m['mean_halfwidth_grey'] > 0
      assert len(m['risk_by_sigma_quartile']) == 4
  assert 'mean_risk' in study['crc'] and 'mean_risk' in study[
      'constant_width']
  assert 'crc' in r.stderr and 'risk <= alpha in' in r.stderr
  # Too few images for the asked alpha: one line that says so.
  r = run_module('evaluate', f'--workdir={setup.work}',
                 f'--data={setup.test}', '--conformal_splits=5')
  assert r.returncode == 2
  (line,) = error_lines(r.stderr)
  assert 'crc at alpha=0.1 needs at least 9 calibration images' in line


def test_too_few_calibration_images_for_alpha(setup, tmp_path):
  work = tmp_path / 'w'
  shutil.copytree(setup.work, work)
  r = run_module('evaluate', f'--workdir={work}',
                 f'--calibrate_on={setup.calib}',
                 '--calibration_method=crc', f'--data={setup.test}')
  assert r.returncode == 2
  (line,) = error_lines(r.stderr)
  assert 'crc at alpha=0.1 needs at least 9 calibration images' in line
  assert not (work / 'calibration.json').exists()


def test_one_split_by_hand(setup):
  """``split_study`` with one split: the seeded halving, crc fitted on the
  first half, the share outside measured on the second, by hand."""
  predictor = inference.load(setup.work)
  results = folders_lib.evaluate_folder(
      folders_lib.resolve_folders(str(setup.calib))[0], Protocol(4, tile=0),
      predictor, quiet=True).images
  study = intervals.split_study(results, splits=1, alpha=0.4, delta=0.3,
                                seed=7, quiet=True)
  order = np.random.default_rng(7).permutation(len(results))
  cal, test = order[:4], order[4:]
  ratios = intervals.image_ratios(results, 'rgb')
  lam = conformal.crc_lambda([ratios[i] for i in cal], 0.4)
  shares = [np.mean(np.abs(results[i].samples['rgb'][0])
                    > lam * results[i].samples['rgb'][1]) for i in test]
  assert study['crc']['mean_risk'] == pytest.approx(np.mean(shares))
  assert study['crc']['frac_risk_le_alpha'] == float(np.mean(shares) <= 0.4)
  widths = [lam * results[i].samples['rgb'][1] for i in test]
  assert study['crc']['mean_halfwidth_grey'] == pytest.approx(
      np.concatenate(widths).mean(), rel=1e-6)
