"""edgedet: EfficientDet (D0-D7, D7x, Lite0-4) from PyTorch to the edge.

The top level imports no heavy library: torch loads only with create_model / the torch backend,
ONNX Runtime / OpenVINO / TensorRT only when their backend is used. `edgedet.load(...)` is the facade
(a model name is built through the artifact cache; an artifact is loaded as it is).
"""

from .configs import MODELS, ModelConfig, get_config
from .detections import Detections
from .errors import ArtifactError, BackendUnavailableError, ConversionError, EdgeDetError, InputError


def _version() -> str:
    """The installed distribution's version (setup.py is its one source); a bare checkout has none."""
    from importlib import metadata

    try:
        return metadata.version("edgedet")
    except metadata.PackageNotFoundError:
        return "0+unknown"


__version__ = _version()

__all__ = [
    "MODELS",
    "ModelConfig",
    "get_config",
    "Detections",
    "EdgeDetError",
    "ArtifactError",
    "BackendUnavailableError",
    "ConversionError",
    "InputError",
    "create_model",
    "Detector",
    "load",
    "__version__",
]


def create_model(*args, **kwargs):
    """edgedet.model.create_model (imports torch)."""
    from .model import create_model as _create

    return _create(*args, **kwargs)


def load(source, backend=None, device=None, **kwargs):
    """A Detector for a model name (built through the cache) or an artifact: see edgedet.api.load."""
    from .api import load as _load

    return _load(source, backend=backend, device=device, **kwargs)


def __getattr__(name):
    if name == "Detector":
        from .runtimes import Detector

        return Detector
    raise AttributeError(f"module 'edgedet' has no attribute {name!r}")
