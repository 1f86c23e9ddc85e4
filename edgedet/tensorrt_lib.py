"""TensorRT facts both the engine builder (converters) and the runner (runtimes) need: importing the library
with a clear error, its major version, and whether an engine's recorded device matches this one.
TensorRT itself is imported only inside these functions.

Typing (typecheck/run.sh): mypy cannot carry a module's attributes through a function's return type, so
callers type-check TensorRT as `import_tensorrt()` (the clear error) followed by `import tensorrt as trt` (the
module, typed by tensorrt-stubs; already loaded, so nothing more happens at run time)."""

from __future__ import annotations

from types import ModuleType

from .errors import ArtifactError, BackendUnavailableError


def import_tensorrt() -> ModuleType:
    try:
        import tensorrt as trt
    except ImportError as e:
        raise BackendUnavailableError("tensorrt", "tensorrt", e) from e
    return trt


_LOGGERS: dict[int, object] = {}


def logger(trt: ModuleType):
    """The one TensorRT logger of this process, shared by the builder and every runtime. NvInferRuntime.h (ILogger):
    "The logger used to create an instance of IBuilder, IRuntime or IRefitter is used for all objects created
    through that interface. The logger must be valid until all objects created are released." A module-level logger
    outlives every engine and context; one instance gives one severity setting for build and run."""
    key = id(trt)  # one per loaded tensorrt module (tests load doubles)
    if key not in _LOGGERS:
        _LOGGERS[key] = trt.Logger(trt.Logger.WARNING)
    return _LOGGERS[key]


def trt_major(trt: ModuleType) -> int:
    return int(trt.__version__.split(".")[0])


def check_engine_device(built: dict | None, current: dict, trt_version: str) -> None:
    """Refuse an engine built for another GPU or TensorRT version (plans are not portable)."""
    built = built or {}
    problems = []
    if built.get("tensorrt") and built["tensorrt"] != trt_version:
        problems.append(f"TensorRT {built['tensorrt']} (here {trt_version})")
    if built.get("compute_capability") and built["compute_capability"] != current.get("compute_capability"):
        problems.append(f"compute capability {built['compute_capability']} (here {current.get('compute_capability')})")
    if built.get("gpu") and built["gpu"] != current.get("gpu"):
        problems.append(f"GPU {built['gpu']} (here {current.get('gpu')})")
    if problems:
        raise ArtifactError(
            "engine was built for " + ", ".join(problems) + ": rebuild it from the ONNX "
            "('edgedet build', or edgedet.load(name, backend='trt') rebuilds through the cache)"
        )
