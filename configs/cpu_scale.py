"""The CPU-scale family behind docs/results.md: Table I's losses and their
siblings on a small SRResNet that trains in minutes on 2 CPU cores.

  python -m gramjax.main --config=configs/cpu_scale.py:gram --workdir=DIR \\
      --config.data.train_dir=../shared/data/SunHays80

The part after ':' picks a row of ``configs/variants.py``. Everything else is
shared: an 8-block x 32-channel SRResNet (9x9 first conv, 3x3 heads),
batches of 16 48x48 HR crops, Adam(0.9, 0.99) at 1e-3 then 1e-4, and 25
SunHays80 images held out of training (``data.holdout``): five to validate
on and choose the checkpoint, twenty to calibrate on. ``benchmarks/reproduce_cpu_scale.py`` trains them over
several seeds and writes the report.
"""

from configs import base
from configs import variants

# The study's variants (docs/results.md), rows of configs/variants.py.
# Table I's four and the two that locate GRAM's cost (beta-NLL 1, faithful);
# the other rows of configs/variants.py train the same way (--losses).
STUDY = ('mse', 'mle', 'gram', 'loss_rescale', 'beta_nll_1', 'faithful')
# name -> {dotted config key: value}, in the study's order.
VARIANTS = {name: variants.VARIANTS[name] for name in STUDY}
# The held-out images the study calibrates on (evaluate --calibrate_on):
# the twenty that neither trained nor validated.
CALIBRATE_ON = 'heldout[5:]'


def get_config(loss: str = 'gram'):
  try:
    c = variants.apply(base.get_config(), loss)
  except ValueError as e:
    raise ValueError(f'configs/cpu_scale.py:{loss}: {e}') from None
  c.model.num_blocks = 8
  c.model.channels = 32
  c.model.head_kernel = 3             # 9x9 heads at HR dominate CPU time.
  c.data.train_dir = '../shared/data/SunHays80'
  c.data.crop_size = 48
  c.total_steps = 3000
  c.optimizer.lr_values = (1e-3, 1e-4)
  c.optimizer.lr_boundaries = (2400,)
  c.log_every = 100
  c.checkpoint_every = 1000
  # The on-device guard drops every step whose loss or gradients are not
  # finite; 'skip' goes on training instead of stopping a 30-model study on
  # one such step (the NLL's can be, at lr 1e-3). The study reports how many
  # steps each run skipped (metrics.jsonl's skipped_steps).
  c.nan_policy = 'skip'
  # Twenty-five SunHays80 images are held out of training: the first five
  # validate while training and pick the best checkpoint, the other twenty
  # calibrate (CALIBRATE_ON); no test image is
  # looked at before the report.
  c.data.holdout = 25
  c.evals = {'heldout': {'folder': 'heldout[:5]', 'every': 1500,
                         'convention': 'standard', 'max_images': 0,
                         'tile': 128}}
  c.best_metric = 'val/heldout/psnr'
  return c
