"""The facade: `edgedet.load()` turns a model name or an artifact into a Detector.

This is the one place (with the CLI and integrations) that uses both converters and runtimes: a model name is
built through the artifact cache (converters), then loaded (runtimes). The core and the runtimes never
import the converters (DESIGN.md)."""
from __future__ import annotations

from pathlib import Path

from .errors import InputError
from .registry import BACKENDS, BackendSpec, get_backend

# keyword arguments of load() that describe the artifact to build for a model name (the rest are runtime options)
BUILD_KEYS = ("weights", "imgsz", "precision", "batch", "max_batch", "postprocess", "num_classes", "class_names",
              "build_options")
DEFAULT_ORDER = ("openvino", "onnxruntime", "torch")


def default_backend() -> BackendSpec:
    """The first installed CPU backend, in DEFAULT_ORDER."""
    for name in DEFAULT_ORDER:
        if BACKENDS[name].available():
            return BACKENDS[name]
    return BACKENDS["onnxruntime"]


def is_model_name(source) -> bool:
    p = Path(str(source))
    return not p.suffix and not p.exists()


def build(model: str, backend: "str | BackendSpec | None" = None, device: str | None = None, rebuild: bool = False,
          **build):
    """The cached artifact of `model` for a backend (its first format); returns a converters BuildResult."""
    from .converters.pipeline import BuildRequest, get_artifact
    spec = get_backend(backend) if backend is not None else default_backend()
    options = dict(build.pop("build_options", None) or {})
    names = build.pop("class_names", None)
    req = BuildRequest(model=str(model), format=spec.build_format.name, device=device, options=options,
                       class_names=tuple(names) if names else None, **build)
    return get_artifact(req, rebuild=rebuild)


def load(source, backend: "str | BackendSpec | None" = None, device: str | None = None, rebuild: bool = False,
         **kwargs):
    """A Detector for an artifact path or a model name.

    Model names ('d0', 'lite2', ...) are built through the artifact cache with the build keywords
    (weights, imgsz, precision, batch, max_batch, postprocess, num_classes, class_names, build_options); the
    other keywords are the Detector's (score_threshold, verify) and the backend's runtime options. An option
    that neither the build nor the backend declares is an InputError."""
    from .runtimes import Detector
    build_kw = {k: kwargs.pop(k) for k in BUILD_KEYS if k in kwargs}
    if not is_model_name(source):
        if build_kw:
            raise InputError(f"{', '.join(build_kw)} applies to model names only; '{source}' is an artifact "
                             "(its manifest fixes how it was built)")
        return Detector.load(source, backend=backend, device=device, **kwargs)
    spec = get_backend(backend) if backend is not None else default_backend()
    if build_kw.get("weights") is not None:
        build_kw["weights"] = str(build_kw["weights"])
    built = build(str(source), spec, device if spec.build_format.device_specific else None, rebuild, **build_kw)
    return Detector.load(built.path, backend=spec, device=device, **kwargs)
