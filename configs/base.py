"""Shared base: the paper's hyper-parameters (GRAM paper, section IV-B).

Every experiment config starts from ``get_config()`` here and changes only
what differs. All knobs live in this ConfigDict; it is locked, so a typo in
``--config.some.key=...`` is an error.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.total_steps = 300_000          # 2e5 at lr 1e-4 + 1e5 at lr 1e-5.
  c.batch_size = 16                # Global batch, split over all devices.
  # CPU-only, single-process runs: split the host into this many XLA devices
  # and train data-parallel over them (each runs on its own thread; 1.35x on
  # 2 cores). 0: one per core, the most that divides batch_size; 1: off.
  c.cpu_devices = 0

  c.model = ml_collections.ConfigDict()
  c.model.name = 'srresnet'
  c.model.scale = 4
  c.model.num_blocks = 16
  c.model.channels = 64
  c.model.activation = 'leaky_relu'   # or 'prelu' (official code).
  c.model.leaky_slope = 0.2
  c.model.batch_norm = False          # True in the official code.
  c.model.residual_init_scale = 0.1   # Init scale of each block's last conv.
  c.model.log_var_init = 0.0          # Initial log-variance ([-1,1] units).
  c.model.mean_activation = 'none'   # or 'tanh' (official code).
  c.model.first_kernel = 9
  c.model.head_kernel = 9             # Mean and log-variance heads.
  c.model.icnr = True                 # Equal sub-kernels at init before
                                      # each pixel shuffle (no grid).
  c.model.shuffle_blur = False        # Outputs blurred: no shuffle grid.
  # The log-variance head sees a stop-gradient copy of the trunk's features
  # (the trunk learns from the mean alone; loss 'faithful' needs it).
  c.model.log_var_stop_gradient = False
  c.model.compute_dtype = 'float32'

  c.loss = ml_collections.ConfigDict()
  c.loss.name = 'gram'                # A key of gramjax.core.losses.LOSSES.
  # Keyword options of that loss (validated against its signature).
  c.loss.options = ml_collections.ConfigDict({'units': '[-1,1]'})
  # () for none, or (lo, hi): clamp of s in [-1, 1] units.
  c.loss.log_var_clip = ()
  # Steps trained with the MSE before the loss above takes over (0: none);
  # the log-variance head keeps its initial value (model.log_var_init).
  c.loss.mse_warmup = 0

  c.data = ml_collections.ConfigDict()
  # A folder of images, a folder made by `python -m gramjax.prepare`, or
  # 'builtin:skimage'.
  c.data.train_dir = 'data/DIV2K/DIV2K_train_HR'
  # If set, train_dir is decoded once into memory-mappable arrays here.
  c.data.prepared_dir = ''
  # 'bicubic': LR made on the device (MATLAB imresize); 'files': official LR
  # images from train_lr_dir (e.g. data/DIV2K/DIV2K_train_LR_bicubic/X4).
  c.data.lr_source = 'bicubic'
  c.data.train_lr_dir = ''
  c.data.crop_size = 96               # HR crop; LR is crop_size / scale.
  c.data.augment = True               # Flips and 90/180/270 rotations.
  c.data.round_lr = True              # LR rounded to 8-bit levels.
  c.data.num_threads = 2
  # Images of train_dir kept out of training, spread evenly over its sorted
  # file list (e.g. to fit a recalibration on: evaluate --calibrate_on=heldout).
  c.data.holdout = 0
  # Images super-resolved at the end of training into WORKDIR/samples
  # ('' for none): a folder, a file or 'builtin:skimage/NAME'.
  c.data.sample_images = ''

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.99
  c.optimizer.eps = 1e-8
  c.optimizer.lr_values = (1e-4, 1e-5)
  c.optimizer.lr_boundaries = (200_000,)
  c.optimizer.grad_clip_norm = 0.0    # 0: no clipping.

  # Exponential moving average of the weights (BasicSR: 0.999), part of the
  # train state; evaluation, samples and predict then use it. 0: off.
  c.ema_decay = 0.0

  c.log_every = 100
  c.checkpoint_every = 5_000
  c.keep_checkpoints = 3
  # Training steps per jitted call (lax.scan over stacked batches); 0: the
  # platform's default (1 on CPU, 8 on GPU/TPU). Logs, checkpoints and
  # validations land on the same steps whatever the value.
  c.steps_per_dispatch = 0

  # Validation while training: name -> {folder (a data spec), every (steps),
  # convention ('standard' | 'official_code'), max_images (0: all), tile}.
  # Logged as val/<name>/psnr, ssim, nll, ause, coverage_90. A folder that
  # does not exist is logged and skipped.
  c.evals = ml_collections.ConfigDict({
      'div2k': {'folder': 'data/DIV2K/DIV2K_valid_HR', 'every': 5_000,
                'convention': 'standard', 'max_images': 10, 'tile': 128}})
  # Keep the checkpoint with the best value of this validation metric
  # (e.g. 'val/div2k/psnr'; '' for none) beside the latest ones;
  # evaluate/predict --step=best load it.
  c.best_metric = 'val/div2k/psnr'
  c.best_mode = 'max'                 # or 'min' (e.g. for nll).
  c.tensorboard = True                # If tensorboardX is installed.
  # A step with a non-finite loss or gradients is never applied; 'stop'
  # ends the run at the next log/checkpoint point (the last checkpoint
  # stays good), 'skip' goes on and counts them.
  c.nan_policy = 'stop'
  # (first, last): a jax.profiler trace of these steps into WORKDIR/profile
  # (TensorBoard's profile plugin, or Perfetto: trace.json.gz); () for none.
  c.profile_steps = ()
  return c
