"""The CPU-scale family behind docs/results.md: Table I's five losses on a
small SRResNet that trains in minutes on 2 CPU cores.

  python -m gramjax.main --config=configs/cpu_scale.py:gram --workdir=DIR \\
      --config.data.train_dir=../shared/data/SunHays80

The part after ':' picks the loss: mse, mle, gram, loss_rescale or beta_nll,
with the same options as configs/<name>.py. Everything else is shared: an
8-block x 32-channel SRResNet (9x9 first conv, 3x3 heads), batches of 16
48x48 HR crops, Adam(0.9, 0.99) at 1e-3 then 1e-4. `benchmarks/
reproduce_cpu_scale.py` trains all five over several seeds and writes the
report.
"""

from configs import base

LOSSES = {
    'mse': ('mse', {}),
    'mle': ('nll', {}),
    'gram': ('gram', {'units': '[-1,1]'}),
    'loss_rescale': ('loss_rescale', {'units': '[-1,1]'}),
    'beta_nll': ('beta_nll', {'beta': 0.5}),
}


def get_config(loss: str = 'gram'):
  if loss not in LOSSES:
    raise ValueError(f'configs/cpu_scale.py:{loss}: unknown loss; choose one '
                     f'of {", ".join(LOSSES)}')
  c = base.get_config()
  c.loss.name, options = LOSSES[loss]
  c.loss.options = options
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
  # Validation on Set5 beside the repository, when it is there.
  c.evals = {'set5': {'folder': '../shared/data/Set5', 'every': 1000,
                      'convention': 'standard', 'max_images': 0,
                      'tile': 128}}
  c.best_metric = 'val/set5/psnr'
  return c
