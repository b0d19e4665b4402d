"""Layer 3, running a trained model: the tiled ``Predictor`` and locating a
checkpoint (``predictor``), batch prediction of image files (``photos``).

``gramjax.inference.load(workdir)`` is the public entry point."""

from gramjax.inference.predictor import (ModelError, Predictor, config_file,
                                         from_state, latest_step, load,
                                         parse_step, resolve_model,
                                         workdir_config)

__all__ = ['ModelError', 'Predictor', 'config_file', 'from_state',
           'latest_step', 'load', 'parse_step', 'resolve_model',
           'workdir_config']
