"""A few-minute CPU demo: a small GRAM SRResNet (x4) trained on the natural
photographs that ship inside the scikit-image wheel (no download), then
super-resolving the held-out cat photo 'chelsea' into WORKDIR/samples."""

from configs import base


def get_config():
  c = base.get_config()
  # GRAM's gradients (eq. 4) written as a custom VJP: the logged loss is then
  # the plain NLL, which falls; gram's masked NLL can rise as the mask shrinks.
  c.loss.name = 'gram_vjp'
  c.loss.options = {'units': '[-1,1]'}
  c.model.num_blocks = 4
  c.model.channels = 32
  c.model.head_kernel = 3             # 9x9 heads at HR dominate CPU time.
  # A fixed blur of the outputs: at this short run's learning rate the
  # shuffles' sub-kernels drift apart and ICNR's even start is lost (a
  # 4-pixel grid in the maps); see docs/training.md, "The demo's pictures".
  c.model.shuffle_blur = True
  c.data.train_dir = 'builtin:skimage'
  c.data.sample_images = 'builtin:skimage/chelsea'
  c.data.crop_size = 64
  # 1200 steps (900 + 300) stopped below bicubic on Set5 (28.29 vs 28.42 dB).
  c.total_steps = 1600
  c.optimizer.lr_values = (1e-3, 2e-4)
  c.optimizer.lr_boundaries = (1200,)
  # An EMA of the weights over about the last 100 steps: the last step's
  # weights alone scattered by 0.1 dB on Set5 between runs that split the
  # CPU differently (one device or two), around bicubic's 28.42.
  c.ema_decay = 0.99
  c.log_every = 50
  c.checkpoint_every = 400
  # Validate on the held-out photo; keep the best checkpoint by its PSNR.
  c.evals = {'heldout': {'folder': 'builtin:skimage/chelsea', 'every': 200,
                         'convention': 'standard', 'max_images': 0,
                         'tile': 128}}
  c.best_metric = 'val/heldout/psnr'
  return c
