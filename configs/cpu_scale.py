"""The CPU-scale family behind docs/results.md: Table I's losses and their
siblings on a small SRResNet that trains in minutes on 2 CPU cores.

  python -m gramjax.main --config=configs/cpu_scale.py:gram --workdir=DIR \\
      --config.data.train_dir=../shared/data/SunHays80

The part after ':' picks a row of ``configs/variants.py``. Everything else is
shared: an 8-block x 32-channel SRResNet (9x9 first conv, 3x3 heads),
batches of 16 48x48 HR crops, Adam(0.9, 0.99) at 1e-3 then 1e-4, and ten
SunHays80 images held out of training to fit recalibrations on
(``data.holdout``). ``benchmarks/reproduce_cpu_scale.py`` trains them over
several seeds and writes the report.
"""

from configs import base
from configs import variants

# The study's variants (docs/results.md), rows of configs/variants.py.
STUDY = ('mse', 'mle', 'gram', 'gram_255', 'loss_rescale', 'beta_nll',
         'beta_nll_1', 'faithful', 'gram_warmup', 'gram_noise_init')
# name -> {dotted config key: value}, in the study's order.
VARIANTS = {name: variants.VARIANTS[name] for name in STUDY}


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
  c.data.holdout = 10
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
  # Validation on Set5 beside the repository, when it is there.
  c.evals = {'set5': {'folder': '../shared/data/Set5', 'every': 1000,
                      'convention': 'standard', 'max_images': 0,
                      'tile': 128}}
  c.best_metric = 'val/set5/psnr'
  return c
