"""Model zoo: build a model from ``config.model``."""

from gramjax.models.srresnet import SRResNet, build_model

__all__ = ['SRResNet', 'build_model']
