"""The one table of loss variants every experiment config picks from.

``VARIANTS[name]`` is ``{dotted config key: value}``, applied on top of
``configs/base.py`` (or a scale of it, ``configs/cpu_scale.py``) by
``apply``. The per-loss files (``configs/gram.py``, ``mse.py``, ...) are
the paper-scale experiments: each is ``base`` + one row of this table.
"""

import math

import ml_collections

# A round 10 grey levels RMS, as s = log sigma^2 in [-1, 1] units (about
# -5.1). It was read off an earlier study's test-set error, so the
# variant that uses it (gram_noise_init) is not in the CPU-scale study,
# whose choices see no test image.
NOISE_LOG_VAR = 2 * math.log(10 / 127.5)
# Steps of MSE before the likelihood takes over (a third of the CPU-scale
# study's training).
WARMUP_STEPS = 1000

_GRAM = {'loss.name': 'gram', 'loss.options': {'units': '[-1,1]'}}

VARIANTS = {
    # SRResNet* baseline, eq. (1); the log-variance head is untrained.
    'mse': {'loss.name': 'mse', 'loss.options': {}},
    # SRResNet-MLE: the Gaussian NLL (attenuation loss), eq. (3).
    'mle': {'loss.name': 'nll', 'loss.options': {}},
    # SRResNet-GRAM, eq. (4); units: the pixel range of sigmoid(s).
    'gram': _GRAM,
    'gram_255': {'loss.name': 'gram', 'loss.options': {'units': '[0,255]'}},
    # The same gradients as a custom VJP (the logged loss is the plain NLL).
    'gram_vjp': {'loss.name': 'gram_vjp', 'loss.options': {'units': '[-1,1]'}},
    # Loss-rescaling ablation, eq. (5): sigmoid(s) * NLL, differentiated.
    'loss_rescale': {'loss.name': 'loss_rescale',
                     'loss.options': {'units': '[-1,1]'}},
    # beta-NLL (Seitzer et al. 2022): stop_gradient(sigma^(2 beta)) * NLL.
    'beta_nll': {'loss.name': 'beta_nll', 'loss.options': {'beta': 0.5}},
    'beta_nll_1': {'loss.name': 'beta_nll', 'loss.options': {'beta': 1.0}},
    # Faithful heteroscedastic regression (Stirn et al., AISTATS 2023): the
    # mean by MSE, the log-variance head by the NLL on a stop-gradient copy
    # of the trunk's features.
    'faithful': {'loss.name': 'faithful', 'loss.options': {},
                 'model.log_var_stop_gradient': True},
    'gram_warmup': {**_GRAM, 'loss.mse_warmup': WARMUP_STEPS},
    'gram_noise_init': {**_GRAM, 'model.log_var_init': NOISE_LOG_VAR},
}


def apply(config: ml_collections.ConfigDict,
          name: str) -> ml_collections.ConfigDict:
  """``config`` with the variant ``name``'s keys set; a ``ValueError``
  naming the variant and the choices when it is unknown."""
  if name not in VARIANTS:
    raise ValueError(f'unknown loss variant {name!r}; choose one of '
                     f'{", ".join(VARIANTS)}')
  config.update_from_flattened_dict(VARIANTS[name])
  return config
