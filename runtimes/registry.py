"""Backend registry: artifact suffix -> backend, backend name -> runner class (imported lazily)."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from edgedet.errors import ArtifactError, BackendUnavailableError, InputError


@dataclass(frozen=True)
class BackendSpec:
    name: str
    module: str          # runner module, imported only when the backend is used
    cls: str
    extra: str           # pip extra that installs the backend library
    library: str         # the library's import name, to report availability
    suffixes: tuple[str, ...]
    aliases: tuple[str, ...] = ()


_BACKENDS: dict[str, BackendSpec] = {}
_ALIASES: dict[str, str] = {}
_DEFAULT_FOR_SUFFIX: dict[str, str] = {}


def register_backend(spec: BackendSpec, default_for: tuple[str, ...] = ()) -> None:
    _BACKENDS[spec.name] = spec
    for a in (spec.name, *spec.aliases):
        _ALIASES[a] = spec.name
    for s in default_for:
        _DEFAULT_FOR_SUFFIX[s] = spec.name


def backend_names() -> list[str]:
    return list(_BACKENDS)


def get_backend(name: str) -> BackendSpec:
    key = _ALIASES.get(name.lower().strip())
    if key is None:
        raise InputError(f"unknown backend '{name}'; choose one of: {', '.join(_BACKENDS)} "
                         f"(aliases: {', '.join(a for a in _ALIASES if a not in _BACKENDS)})")
    return _BACKENDS[key]


def backend_for(path: Path, backend: str | None) -> BackendSpec:
    suffix = path.suffix.lower()
    if backend is None:
        if suffix not in _DEFAULT_FOR_SUFFIX:
            raise ArtifactError(f"cannot tell the backend of '{path.name}': known artifact suffixes are "
                                f"{', '.join(sorted(_DEFAULT_FOR_SUFFIX))}")
        return _BACKENDS[_DEFAULT_FOR_SUFFIX[suffix]]
    spec = get_backend(backend)
    if suffix not in spec.suffixes:
        raise ArtifactError(f"backend '{spec.name}' cannot run '{path.name}' (it runs {', '.join(spec.suffixes)})")
    return spec


def is_available(name: str) -> bool:
    spec = get_backend(name)
    try:
        importlib.import_module(spec.library)
    except Exception:
        return False
    return True


def runner_class(spec: BackendSpec):
    try:
        importlib.import_module(spec.library)
    except ImportError as e:
        raise BackendUnavailableError(spec.name, spec.extra, e) from e
    return getattr(importlib.import_module(spec.module), spec.cls)


register_backend(BackendSpec("onnxruntime", "edgedet.runtimes.onnxruntime_runner", "OnnxRuntimeRunner",
                             "onnxruntime", "onnxruntime", (".onnx",), ("ort",)), default_for=(".onnx",))
register_backend(BackendSpec("openvino", "edgedet.runtimes.openvino_runner", "OpenVinoRunner",
                             "openvino", "openvino", (".xml", ".onnx"), ("ov",)), default_for=(".xml",))
register_backend(BackendSpec("torch", "edgedet.runtimes.torch_runner", "TorchRunner",
                             "export", "torch", (".pth", ".pt"), ("pytorch",)), default_for=(".pth", ".pt"))
register_backend(BackendSpec("tensorrt", "edgedet.runtimes.tensorrt_runner", "TensorRTRunner",
                             "tensorrt", "tensorrt", (".engine", ".plan"), ("trt",)), default_for=(".engine", ".plan"))
