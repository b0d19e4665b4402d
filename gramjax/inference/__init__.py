"""Layer 3, running a trained model: the tiled ``Predictor`` and locating a
checkpoint (``predictor``), batch prediction of image files (``photos``).

``gramjax.inference.load(workdir)`` is the public entry point."""

from gramjax.inference.predictor import Predictor, from_state, load

__all__ = ['Predictor', 'from_state', 'load']
