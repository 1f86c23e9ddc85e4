"""edgedet: EfficientDet (D0-D7, D7x, Lite0-4) from PyTorch to the edge.

The top level imports no heavy library: torch loads only with create_model / the torch backend,
ONNX Runtime / OpenVINO / TensorRT only when their backend is used.
"""
from .configs import MODELS, ModelConfig, get_config
from .detections import Detections
from .errors import ArtifactError, BackendUnavailableError, ConversionError, EdgeDetError, InputError

__version__ = "0.1.0"

__all__ = ["MODELS", "ModelConfig", "get_config", "Detections", "EdgeDetError", "ArtifactError",
           "BackendUnavailableError", "ConversionError", "InputError", "create_model", "Detector", "__version__"]


def create_model(*args, **kwargs):
    """edgedet.model.create_model (imports torch)."""
    from .model import create_model as _create
    return _create(*args, **kwargs)


def __getattr__(name):
    if name == "Detector":
        from .runtimes import Detector
        return Detector
    raise AttributeError(f"module 'edgedet' has no attribute {name!r}")
