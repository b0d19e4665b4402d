"""Models: ``build_model(config.model, seed)`` and what callers need to know
about a model without building it (``receptive_radius``)."""

from gramjax.models.srresnet import SRResNet, build_model, receptive_radius

__all__ = ['SRResNet', 'build_model', 'receptive_radius']
