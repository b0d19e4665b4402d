"""Fuzzing the image readers with hypothesis: whatever bytes a file holds,
decoding gives an RGB uint8 image or one clear error naming the file, and
prediction gives its outputs or exactly one ``error:`` line, never a
traceback.

Derandomized (the same examples on every run, so CI is reproducible) and
without an example database; a failure prints the shrunk bytes to replay.
"""

import contextlib
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st
from PIL import Image

from configs import demo as demo_config
from gramjax import data as data_lib
from gramjax.inference import predictor as inference
from gramjax.inference import photos
from gramjax.state import train_state as state
from gramjax.core.errors import UserError

# The fuzzed files are corrupt on purpose: PIL warns about their metadata
# (truncated EXIF, tags past the end of the file) before our error says
# what is wrong; those warnings are the input working, not a problem.
pytestmark = pytest.mark.filterwarnings(
    'ignore::UserWarning:PIL.TiffImagePlugin')

FUZZ = settings(max_examples=1000, deadline=None, derandomize=True,
                database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow])
SUFFIXES = ('.png', '.jpg', '.jpeg', '.gif', '.bmp', '.tif', '.webp',
            '.ppm', '.pgm')


def _encode(img, fmt, **kw):
  buf = io.BytesIO()
  img.save(buf, format=fmt, **kw)
  return buf.getvalue()


def _seeds():
  """Small valid files of every format and several PIL modes."""
  rng = np.random.default_rng(0)
  rgb = Image.fromarray(rng.integers(0, 256, (10, 12, 3), np.uint8))
  grey16 = Image.fromarray(
      rng.integers(0, 65536, (9, 7), np.uint16).astype(np.uint16))
  exif = Image.Exif()
  exif[0x0112] = 6
  return {
      'rgb.png': _encode(rgb, 'PNG'),
      'grey.png': _encode(rgb.convert('L'), 'PNG'),
      'rgba.png': _encode(rgb.convert('RGBA'), 'PNG'),
      'palette.png': _encode(rgb.convert('P'), 'PNG'),
      'grey16.png': _encode(grey16, 'PNG'),
      'photo.jpg': _encode(rgb, 'JPEG', quality=80),
      'rotated.jpg': _encode(rgb, 'JPEG', quality=80, exif=exif),
      'cmyk.jpg': _encode(rgb.convert('CMYK'), 'JPEG'),
      'anim.gif': _encode(rgb.convert('P'), 'GIF', save_all=True,
                          append_images=[rgb.convert('P').rotate(90)]),
      'pic.bmp': _encode(rgb, 'BMP'),
      'pic.tif': _encode(rgb, 'TIFF'),
      'pic.webp': _encode(rgb, 'WEBP'),
      'pic.ppm': _encode(rgb, 'PPM'),
  }


SEEDS = _seeds()


@st.composite
def mutated_files(draw):
  """(name, bytes): a valid seed file with up to 4 byte flips, truncations,
  insertions or deletions."""
  name = draw(st.sampled_from(sorted(SEEDS)))
  data = bytearray(SEEDS[name])
  for _ in range(draw(st.integers(0, 4))):
    op = draw(st.sampled_from(['flip', 'flip', 'truncate', 'insert',
                               'delete']))
    # Headers come first: positions counted from the end as often, so that
    # pixel data (which often still decodes) gets its share.
    pos = draw(st.integers(0, max(0, len(data) - 1)))
    if draw(st.booleans()):
      pos = max(0, len(data) - 1 - pos)
    if op == 'flip' and data:
      data[pos] ^= draw(st.integers(1, 255))
    elif op == 'truncate':
      del data[pos:]
    elif op == 'insert':
      data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    elif op == 'delete':
      del data[pos:pos + draw(st.integers(1, 16))]
  return name, bytes(data)


def arbitrary_files():
  """(name, bytes): any bytes, some with a real format's magic in front."""
  magic = st.sampled_from([b'', b'\x89PNG\r\n\x1a\n', b'\xff\xd8\xff',
                           b'GIF89a', b'BM', b'II*\x00', b'RIFF\0\0\0\0WEBP',
                           b'P6\n4 4\n255\n'])
  body = st.binary(max_size=600)
  return st.tuples(st.sampled_from(SUFFIXES).map(lambda s: 'f' + s),
                   st.builds(lambda m, b: m + b, magic, body))


def check_load_image(path):
  """The contract of ``data.load_image`` on any file."""
  try:
    img = data_lib.load_image(path)
  except UserError as e:
    assert str(path) in str(e)
    event('refused')
    return None
  event('decoded')
  assert isinstance(img, np.ndarray) and img.dtype == np.uint8
  assert img.ndim == 3 and img.shape[2] == 3
  assert img.shape[0] > 0 and img.shape[1] > 0
  return img


@pytest.fixture(scope='module')
def scratch(tmp_path_factory):
  return tmp_path_factory.mktemp('fuzz')


def test_seeds_decode():
  """The unmutated seeds are good images (so mutations start from ones)."""
  for name, data in SEEDS.items():
    with Image.open(io.BytesIO(data)) as im:
      im.load()
  assert len(SEEDS) == 13


@FUZZ
@given(file=mutated_files())
def test_load_image_on_mutated_files(scratch, file):
  name, data = file
  path = scratch / f'mutated_{name}'
  path.write_bytes(data)
  check_load_image(path)


@FUZZ
@given(file=arbitrary_files())
def test_load_image_on_arbitrary_bytes(scratch, file):
  name, data = file
  path = scratch / f'arbitrary_{name}'
  path.write_bytes(data)
  check_load_image(path)


# ------------------------------------------------------------- predict --

@pytest.fixture(scope='module')
def predictor():
  """A tiny untrained model: the file handling does not care."""
  c = demo_config.get_config()
  c.model.num_blocks, c.model.channels = 1, 4
  recipe = state.build(c)
  return inference.Predictor(c, recipe.graphdef, recipe.params,
                             recipe.model_state, step=0)


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
@given(file=st.one_of(mutated_files(), arbitrary_files()))
def test_predict_gives_outputs_or_one_error_line(predictor, scratch, file):
  name, data = file
  indir, outdir = scratch / 'in', scratch / 'out'
  indir.mkdir(exist_ok=True)
  outdir.mkdir(exist_ok=True)
  for p in outdir.iterdir():
    p.unlink()
  path = indir / name
  path.write_bytes(data)
  job = photos.Job(path, path.stem)
  said, stderr = [], io.StringIO()
  with contextlib.redirect_stderr(stderr):
    results, failures = photos.predict_all(
        predictor, [job], outdir, show_progress=False, say=said.append)
  assert 'Traceback' not in stderr.getvalue() + ''.join(said)
  errors = [l for l in said if l.startswith('error:')]
  assert all('\n' not in l for l in said)
  if results:
    event('predicted')
    assert not failures and not errors
    r = results[0]
    lr = data_lib.load_image(path)
    assert r.lr_size == (lr.shape[1], lr.shape[0])
    assert sorted(p.name for p in outdir.iterdir()) == sorted(
        o.name for o in job.outputs(outdir).values())
    with Image.open(r.sr) as sr:
      assert sr.size == (lr.shape[1] * 4, lr.shape[0] * 4)
  else:
    event('one error line')
    assert len(failures) == 1 and errors == [failures[0][1]]
    assert errors[0].startswith(f'error: {path}: ')
    # An anticipated failure, not a generic exception's name.
    assert '--verbose shows the traceback' not in errors[0], errors[0]
    assert list(outdir.iterdir()) == []   # No partial outputs.
