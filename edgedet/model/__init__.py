"""PyTorch model zoo (needs the [export] extra: torch, torchvision, timm)."""

from .efficientdet import EfficientDet
from .factory import create_model, load_weights

__all__ = ["EfficientDet", "create_model", "load_weights"]
