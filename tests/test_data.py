"""Image decoding, data specs and the grain training pipeline."""


import ml_collections
import numpy as np
import pytest
from PIL import Image

from gramjax import data
from gramjax.core.errors import UserError


def save(path, arr, **kw):
  Image.fromarray(arr).save(path, **kw)
  return path


# ------------------------------------------------------------ load_image --

def test_load_rgb_png_roundtrip(tmp_path):
  arr = np.random.default_rng(0).integers(0, 256, (7, 11, 3), np.uint8)
  got = data.load_image(save(tmp_path / 'a.png', arr))
  assert got.dtype == np.uint8 and got.flags.c_contiguous
  np.testing.assert_array_equal(got, arr)


def test_load_greyscale_gives_three_equal_channels(tmp_path):
  grey = np.random.default_rng(1).integers(0, 256, (6, 9), np.uint8)
  path = save(tmp_path / 'g.png', grey)
  assert Image.open(path).mode == 'L'
  got = data.load_image(path)
  assert got.shape == (6, 9, 3) and got.dtype == np.uint8
  for c in range(3):
    np.testing.assert_array_equal(got[..., c], grey)


def test_load_rgba_drops_alpha(tmp_path):
  rgba = np.random.default_rng(2).integers(0, 256, (5, 8, 4), np.uint8)
  rgba[0, 0, 3] = 0            # fully transparent pixel keeps its colour
  path = save(tmp_path / 'rgba.png', rgba)
  assert Image.open(path).mode == 'RGBA'
  got = data.load_image(path)
  assert got.shape == (5, 8, 3)
  np.testing.assert_array_equal(got, rgba[..., :3])


def test_load_16bit_png_scaled_to_8bit(tmp_path):
  vals = np.array([0, 257, 1000, 32768, 65280, 65535] * 4, np.uint16)
  a16 = vals.reshape(4, 6)
  path = save(tmp_path / 'deep.png', a16)
  assert Image.open(path).mode.startswith('I')
  got = data.load_image(path)
  assert got.shape == (4, 6, 3) and got.dtype == np.uint8
  expected = np.round(a16.astype(np.float64) * 255.0 / 65535.0)
  for c in range(3):
    np.testing.assert_array_equal(got[..., c], expected)
  # Spot values: 65535 -> 255, 257 -> 1, 32768 -> 128, 1000 -> 4.
  assert list(got[0, :, 0]) == [0, 1, 4, 128, 254, 255]


def test_load_dark_16bit_png_is_still_16bit(tmp_path):
  """Bit depth comes from the mode, not the content: 200/65535 is near black."""
  a16 = np.full((4, 4), 200, np.uint16)
  a16[0, 0] = 255
  path = save(tmp_path / 'dark.png', a16)
  assert Image.open(path).mode == 'I;16'
  got = data.load_image(path)
  # 200 and 255 out of 65535 are both round(v / 257) = 1 out of 255.
  np.testing.assert_array_equal(got, 1)


def quadrants(h, w):
  """An RGB image of four flat quadrants (blocky, so JPEG keeps it)."""
  img = np.zeros((h, w, 3), np.uint8)
  img[:h // 2, :w // 2] = (255, 0, 0)       # top-left red
  img[:h // 2, w // 2:] = (0, 255, 0)       # top-right green
  img[h // 2:, :w // 2] = (0, 0, 255)       # bottom-left blue
  img[h // 2:, w // 2:] = (255, 255, 255)   # bottom-right white
  return img


def dihedral(p, k):
  """The 8 dihedral transforms: k // 4 flips left-right, then k % 4 quarter
  turns counter-clockwise (np.rot90)."""
  if k >= 4:
    p = p[:, ::-1]
  return np.rot90(p, k % 4)


def test_load_jpeg_applies_exif_orientation(tmp_path):
  img = quadrants(32, 64)
  plain = tmp_path / 'plain.jpg'
  rotated = tmp_path / 'rotated.jpg'
  Image.fromarray(img).save(plain, quality=95)
  exif = Image.Exif()
  exif[0x0112] = 6             # "rotate 90 degrees clockwise to display"
  Image.fromarray(img).save(rotated, quality=95, exif=exif)

  got_plain = data.load_image(plain)
  assert got_plain.shape == (32, 64, 3)
  got = data.load_image(rotated)
  assert got.shape == (64, 32, 3)
  clockwise = np.rot90(img, -1)
  err = {k: np.abs(got.astype(int) - dihedral(img, k)).mean()
         for k in range(8) if dihedral(img, k).shape == got.shape}
  assert np.abs(got.astype(int) - clockwise).mean() < 5
  assert min(err, key=err.get) == 3            # rot90 x3 CCW == 90 CW
  # Clockwise: the old bottom-left (blue) is now the top-left corner.
  np.testing.assert_allclose(got[8, 8], (0, 0, 255), atol=10)
  np.testing.assert_allclose(got[8, 24], (255, 0, 0), atol=10)


def test_truncated_png_is_a_user_error(tmp_path):
  arr = np.random.default_rng(3).integers(0, 256, (64, 64, 3), np.uint8)
  path = save(tmp_path / 'trunc.png', arr)
  raw = path.read_bytes()
  path.write_bytes(raw[:len(raw) // 2])
  with pytest.raises(UserError) as e:
    data.load_image(path)
  assert str(path) in str(e.value)


def test_text_file_named_png_is_a_user_error(tmp_path):
  path = tmp_path / 'notes.png'
  path.write_text('this is not an image\n')
  with pytest.raises(UserError) as e:
    data.load_image(path)
  assert str(path) in str(e.value)


def test_missing_file_is_a_user_error(tmp_path):
  path = tmp_path / 'nowhere.png'
  with pytest.raises(UserError) as e:
    data.load_image(path)
  assert str(path) in str(e.value)


# -------------------------------------------------------- resolve_images --

def test_resolve_missing_folder_mentions_path_and_div2k(tmp_path):
  missing = tmp_path / 'DIV2K_train_HR_missing'
  with pytest.raises(UserError) as e:
    data.resolve_images(str(missing))
  msg = str(e.value)
  assert str(missing) in msg
  assert 'DIV2K' in msg.replace(str(missing), '')
  assert 'config.data.train_dir' in msg
  # Sample images (held_out) do not get the DIV2K download hint.
  with pytest.raises(UserError) as e:
    data.resolve_images(str(tmp_path / 'x'), key='config.data.sample_images',
                        held_out=True)
  assert 'config.data.sample_images' in str(e.value)
  assert 'DIV2K' not in str(e.value)


def test_resolve_empty_folder(tmp_path):
  (tmp_path / 'empty').mkdir()
  (tmp_path / 'empty' / 'readme.txt').write_text('no images')
  with pytest.raises(UserError) as e:
    data.resolve_images(str(tmp_path / 'empty'))
  assert str(tmp_path / 'empty') in str(e.value)


def test_resolve_folder_keeps_only_images_sorted(tmp_path):
  px = np.zeros((2, 2, 3), np.uint8)
  for name in ('c.jpeg', 'b.png', 'a.JPG', 'd.bmp'):
    save(tmp_path / name, px)
  (tmp_path / 'notes.txt').write_text('x')
  (tmp_path / 'e.png').mkdir()                     # a folder, not an image
  (tmp_path / 'e.png' / 'inner.png').write_bytes(b'')
  got = data.resolve_images(str(tmp_path))
  assert [p.name for p in got] == ['a.JPG', 'b.png', 'c.jpeg', 'd.bmp']
  # A single file is also a valid spec.
  assert data.resolve_images(str(tmp_path / 'b.png')) == [tmp_path / 'b.png']


def test_resolve_builtin_skimage():
  paths = data.resolve_images('builtin:skimage')
  names = [p.name for p in paths]
  assert 'astronaut.png' in names and 'chelsea.png' not in names
  assert len(paths) == len(set(paths)) >= 5
  for p in paths:
    assert p.is_file(), p
  held = data.resolve_images('builtin:skimage', held_out=True)
  assert [p.name for p in held] == ['chelsea.png']
  cat = data.resolve_images('builtin:skimage/chelsea', held_out=True)
  assert len(cat) == 1 and cat[0].name == 'chelsea.png' and cat[0].is_file()
  assert data.load_image(cat[0]).shape == (300, 451, 3)


@pytest.mark.parametrize('spec', ['builtin:imagenet', 'builtin:skimage/nope'])
def test_resolve_unknown_builtin(spec):
  with pytest.raises(UserError) as e:
    data.resolve_images(spec)
  assert spec in str(e.value)


# ----------------------------------------------------------- load_images --

def test_load_images_refuses_small_images(tmp_path):
  ok = save(tmp_path / 'ok.png', np.full((12, 20, 3), 7, np.uint8))
  small = save(tmp_path / 'small.png', np.zeros((11, 40, 3), np.uint8))
  got = data.load_images([ok], min_size=12)
  assert len(got) == 1 and got[0].shape == (12, 20, 3) and got[0][0, 0, 0] == 7
  with pytest.raises(UserError) as e:
    data.load_images([ok, small], min_size=12)
  msg = str(e.value)
  assert str(small) in msg and 'config.data.crop_size' in msg


# --------------------------------------------------------- train_dataset --

def take(ds, n):
  it = iter(ds)
  return [np.asarray(next(it)['hr']) for _ in range(n)]


def find_transforms(img, patch):
  """All (k, top, left) with dihedral(img[top:, left:][:c, :c], k) == patch."""
  c = patch.shape[0]
  win = np.lib.stride_tricks.sliding_window_view(img, (c, c, 3))[:, :, 0]
  hits = []
  for k in range(8):
    w = win[:, :, :, ::-1] if k >= 4 else win
    w = np.rot90(w, k % 4, axes=(2, 3))
    for top, left in zip(*np.nonzero(np.all(w == patch, axis=(2, 3, 4)))):
      hits.append((k, int(top), int(left)))
  return hits


@pytest.fixture(scope='module')
def noise_image():
  # Random noise: no symmetry, so a crop identifies its transform uniquely.
  return np.random.default_rng(4).integers(0, 256, (14, 17, 3), np.uint8)


def test_find_transforms_helper(noise_image):
  patch = dihedral(noise_image[3:9, 5:11], 6)
  assert find_transforms(noise_image, patch) == [(6, 3, 5)]


@pytest.mark.parametrize('augment', [True, False])
def test_crops_are_dihedral_subwindows(noise_image, augment):
  ds = data.train_dataset([noise_image], crop=6, batch_size=8, seed=3,
                          augment=augment)
  seen = set()
  for batch in take(ds, 16):
    assert batch.dtype == np.uint8 and batch.shape == (8, 6, 6, 3)
    for patch in batch:
      hits = find_transforms(noise_image, patch)
      assert len(hits) == 1, hits
      seen.add(hits[0][0])
  if augment:
    assert seen == set(range(8))     # 128 draws: every transform occurs
  else:
    assert seen == {0}


def test_crop_positions_cover_the_image(noise_image):
  ds = data.train_dataset([noise_image], crop=6, batch_size=8, seed=0,
                          augment=False)
  tops, lefts = set(), set()
  for batch in take(ds, 12):
    for patch in batch:
      (_, top, left), = find_transforms(noise_image, patch)
      tops.add(top)
      lefts.add(left)
  # Every valid offset is reachable (0..h-crop, 0..w-crop), corners too.
  assert tops == set(range(14 - 6 + 1))
  assert lefts == set(range(17 - 6 + 1))


def coded_images(n, size=10):
  """Image i is a solid colour whose value identifies it (10*i + 5)."""
  return [np.full((size, size + i % 3, 3), 10 * i + 5, np.uint8)
          for i in range(n)]


def ids(batch):
  vals = batch.reshape(batch.shape[0], -1)
  assert np.all(vals == vals[:, :1])
  return [(int(v) - 5) // 10 for v in vals[:, 0]]


def test_seed_determinism():
  images = coded_images(3) + [
      np.random.default_rng(5).integers(0, 256, (20, 20, 3), np.uint8)]
  kw = dict(crop=8, batch_size=4)
  a = take(data.train_dataset(images, seed=11, **kw), 6)
  b = take(data.train_dataset(images, seed=11, **kw), 6)
  c = take(data.train_dataset(images, seed=12, **kw), 6)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert any(not np.array_equal(x, y) for x, y in zip(a, c))


def test_iterator_state_resumes_exactly(noise_image):
  images = [noise_image, noise_image[::-1].copy(), noise_image[:, ::-1].copy()]
  ds = data.train_dataset(images, crop=6, batch_size=2, seed=5)
  it = iter(ds)
  for _ in range(5):
    next(it)
  state = it.get_state()
  ahead = [np.asarray(next(it)['hr']) for _ in range(6)]
  it.set_state(state)
  again = [np.asarray(next(it)['hr']) for _ in range(6)]
  fresh = iter(ds)
  fresh.set_state(state)
  restored = [np.asarray(next(fresh)['hr']) for _ in range(6)]
  for x, y, z in zip(ahead, again, restored):
    np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(x, z)
  # And the resumed stream is the uninterrupted one, not a restart.
  straight = take(ds, 11)
  for x, y in zip(straight[5:], ahead):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(straight[0], ahead[0])


def test_every_epoch_visits_each_image_once():
  images = coded_images(8)
  batches = take(data.train_dataset(images, crop=8, batch_size=8, seed=1), 4)
  orders = [ids(b) for b in batches]
  for order in orders:
    assert sorted(order) == list(range(8))
  # Reshuffled per epoch (8! orders: identical epochs would be a bug).
  assert len({tuple(o) for o in orders}) > 1


def test_shards_split_each_epoch():
  images = coded_images(8)
  kw = dict(crop=8, batch_size=4, seed=2, shard_count=2)
  s0 = take(data.train_dataset(images, shard_index=0, **kw), 4)
  s1 = take(data.train_dataset(images, shard_index=1, **kw), 4)
  whole = take(data.train_dataset(images, crop=8, batch_size=8, seed=2), 2)
  for epoch in range(2):
    a, b = ids(s0[epoch]), ids(s1[epoch])
    assert set(a).isdisjoint(b)
    assert sorted(a + b) == list(range(8))
    # Shards interleave the unsharded stream: positions 0, 2, .. and 1, 3, ..
    full = ids(whole[epoch])
    assert a == full[0::2] and b == full[1::2]


# --------------------------------------------------------------------------
# Held-out training images (config.data.holdout).
# --------------------------------------------------------------------------


def _folder_of(tmp_path, n):
  folder = tmp_path / 'train'
  folder.mkdir()
  for i in range(n):
    Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(
        folder / f'{i:03d}.png')
  return folder


@pytest.mark.parametrize('count,holdout,expected', [
    (80, 10, [4, 12, 20, 28, 36, 44, 52, 60, 68, 76]),
    (7, 2, [1, 5]), (5, 1, [2]), (3, 0, [])])
def test_holdout_indices_spread_over_the_folder(count, holdout, expected):
  assert data.images.holdout_indices(count, holdout) == expected


@pytest.mark.parametrize('holdout', [-1, 5, 6])
def test_holdout_must_leave_training_images(holdout):
  with pytest.raises(UserError, match=f'config.data.holdout={holdout}'):
    data.images.holdout_indices(5, holdout)


def test_training_set_leaves_held_out_images_out(tmp_path):
  folder = _folder_of(tmp_path, 9)
  config = ml_collections.ConfigDict(dict(
      train_dir=str(folder), holdout=3, lr_source='bicubic', crop_size=8,
      prepared_dir='', train_lr_dir=''))
  hrs, lrs = data.load_training_set(config, scale=4)
  held = data.held_out_images(config)
  assert lrs is None
  assert [p.name for p in held] == ['001.png', '004.png', '007.png']
  trained = sorted(int(h[0, 0, 0]) for h in hrs)
  assert trained == [0, 2, 3, 5, 6, 8]
  config.holdout = 0
  with pytest.raises(UserError, match='held no training images out'):
    data.held_out_images(config)


@pytest.mark.parametrize('mode,alpha', [('RGB', False), ('RGBA', True),
                                        ('L', False), ('LA', True),
                                        ('P', False), ('P+t', True)])
def test_decode_image_reports_mode_and_alpha_from_one_opening(
    tmp_path, monkeypatch, mode, alpha):
  rng = np.random.default_rng(3)
  rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
  im = Image.fromarray(rgb)
  if mode == 'P+t':
    im = im.convert('P')
    im.info['transparency'] = 0
  else:
    im = im.convert(mode)
  path = tmp_path / 'x.png'
  im.save(path)
  opened = []
  real_open = Image.open
  monkeypatch.setattr(Image, 'open',
                      lambda *a, **k: opened.append(a) or real_open(*a, **k))
  decoded = data.decode_image(path)
  assert len(opened) == 1
  assert decoded.mode == ('P' if mode == 'P+t' else mode)
  assert decoded.alpha is alpha
  np.testing.assert_array_equal(decoded.rgb, data.load_image(path))
  assert decoded.rgb.shape == (6, 5, 3) and decoded.rgb.dtype == np.uint8


def test_heldout_record_is_kept_and_a_damaged_one_written_again(
    tmp_path, caplog):
  from gramjax.data import heldout  # pylint: disable=g-import-not-at-top
  train = tmp_path / 'train'
  train.mkdir()
  rng = np.random.default_rng(4)
  for i in range(5):
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), np.uint8)).save(
        train / f'{i}.png')
  config = ml_collections.ConfigDict({'train_dir': str(train), 'holdout': 2})
  path = heldout.record(tmp_path, config)
  first = path.read_text()
  assert [p.name for p in heldout.recorded(tmp_path)] == [
      p.name for p in data.held_out_images(config)]
  # The folder changes: the record stays, with a warning.
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(train / '00.png')
  heldout.record(tmp_path, config)
  assert path.read_text() == first
  assert 'holds out other images than when this run started' in caplog.text
  # A damaged record is written again (and said so).
  path.write_text('{"images": [')
  heldout.record(tmp_path, config)
  assert 'unreadable' in caplog.text
  assert [p.name for p in heldout.recorded(tmp_path)] == [
      p.name for p in data.held_out_images(config)]
  # No holdout, or a built-in set: no record.
  assert heldout.record(tmp_path / 'x', ml_collections.ConfigDict(
      {'train_dir': 'builtin:skimage', 'holdout': 1})) is None
