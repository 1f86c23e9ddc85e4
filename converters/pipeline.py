"""Model name -> artifact for a backend, through the artifact cache.

Each backend has one builder (a registry, not an if/elif chain). The cache key holds everything that
changes the artifact: model, weights hash, input size, batch profile, precision, post-processing,
calibration hash, backend library version and device. A hit is reused only if its manifest verifies
against the file; anything else is rebuilt, atomically.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from edgedet.errors import ArtifactError, EdgeDetError, InputError
from edgedet.manifest import Manifest
from edgedet.weights import cache_dir, file_sha256


@dataclass(frozen=True)
class BuildRequest:
    model: str
    backend: str
    precision: str = "fp32"
    weights: str | None = None
    num_classes: int | None = None
    imgsz: int | None = None
    batch: int | str = 1
    max_batch: int = 32
    postprocess: str = "host"
    device: str | None = None
    class_names: tuple[str, ...] | None = None
    options: dict = field(default_factory=dict)  # builder-specific (e.g. u8 input for OpenVINO)


@dataclass
class BuildResult:
    path: Path
    cached: bool
    seconds: float


_BUILDERS: dict[str, tuple[str, Callable[[BuildRequest, Path], Path]]] = {}


def register_builder(backend: str, suffix: str):
    def deco(fn):
        _BUILDERS[backend] = (suffix, fn)
        return fn
    return deco


def _library_version(backend: str) -> str:
    from importlib import metadata
    lib = {"onnxruntime": "onnx", "openvino": "openvino", "torch": "torch", "tensorrt": "tensorrt"}[backend]
    try:
        return metadata.version(lib)
    except metadata.PackageNotFoundError:
        return "absent"


def _device_identity(backend: str) -> dict | None:
    """Engines are specific to the GPU model and compute capability: they are part of the cache key."""
    if backend != "tensorrt":
        return None
    from edgedet.runtimes.cuda_memory import cuda_backend
    props = cuda_backend().device_properties()
    return {"gpu": props["gpu"], "compute_capability": props["compute_capability"]}


def cache_key(req: BuildRequest) -> str:
    weights_hash = None
    if req.weights is not None:
        p = Path(req.weights)
        if not p.is_file():
            raise ArtifactError(f"weights file not found: {p}")
        weights_hash = file_sha256(p)
    key = {**asdict(req), "weights": weights_hash, "lib": _library_version(req.backend),
           "device_identity": _device_identity(req.backend), "v": 1}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _with_class_names(req: BuildRequest) -> BuildRequest:
    """Take the class names a trained checkpoint carries unless the request names them."""
    if req.class_names is not None or req.weights is None or str(req.weights).lower() == "coco":
        return req
    from edgedet.model.factory import checkpoint_class_names
    names = checkpoint_class_names(req.weights)
    return BuildRequest(**{**asdict(req), "class_names": tuple(names)}) if names else req


def get_artifact(req: BuildRequest, rebuild: bool = False, root: Path | None = None) -> BuildResult:
    from edgedet.runtimes.registry import get_backend

    backend = get_backend(req.backend).name
    req = _with_class_names(BuildRequest(**{**asdict(req), "backend": backend}))
    if backend not in _BUILDERS:
        raise InputError(f"no builder for backend '{backend}'")
    suffix, build = _BUILDERS[backend]
    folder = (root or cache_dir() / "artifacts") / f"{req.model}-{backend}-{req.precision}-{cache_key(req)}"
    path = folder / f"{req.model}{suffix}"
    if not rebuild and path.is_file():
        try:
            Manifest.read(path, verify=True)
            return BuildResult(path, True, 0.0)
        except EdgeDetError:
            pass  # stale or damaged cache entry: rebuild below
    t0 = time.perf_counter()
    build(req, path)
    return BuildResult(path, False, time.perf_counter() - t0)


def _create(req: BuildRequest):
    from edgedet.model import create_model

    return create_model(req.model, num_classes=req.num_classes, weights=req.weights, image_size=req.imgsz)


def _weights_info(req: BuildRequest):
    from .onnx_export import weights_info
    return weights_info(req.weights)


@register_builder("torch", ".pth")
def _build_torch(req: BuildRequest, path: Path) -> Path:
    from .torch_artifact import save_torch_artifact
    return save_torch_artifact(_create(req), path, req.class_names, _weights_info(req), req.precision, req.max_batch)


def _onnx_request(req: BuildRequest, precision: str) -> BuildRequest:
    return BuildRequest(**{**asdict(req), "backend": "onnxruntime", "precision": precision, "device": None,
                           "options": {}})


@register_builder("onnxruntime", ".onnx")
def _build_onnx(req: BuildRequest, path: Path) -> Path:
    from .onnx_export import ExportOptions, export_onnx
    opts = ExportOptions(batch=req.batch, max_batch=req.max_batch, postprocess=req.postprocess,
                         precision=req.precision, **req.options)
    return export_onnx(_create(req), path, opts, req.class_names, _weights_info(req))


@register_builder("openvino", ".xml")
def _build_openvino(req: BuildRequest, path: Path) -> Path:
    from .openvino_ir import convert_to_openvino
    onnx_path = get_artifact(_onnx_request(req, "fp32")).path
    return convert_to_openvino(onnx_path, path, precision=req.precision, **req.options)


@register_builder("tensorrt", ".engine")
def _build_tensorrt(req: BuildRequest, path: Path) -> Path:
    from .tensorrt_engine import EngineOptions, build_engine
    # TensorRT 11 is strongly typed: FP16 engines come from an FP16 ONNX; INT8 from the Q/DQ ONNX (calibrate).
    onnx_precision = {"fp32": "fp32", "fp16": "fp16"}.get(req.precision)
    if onnx_precision is None:
        raise InputError("TensorRT INT8 engines are built from the Q/DQ ONNX written by 'edgedet calibrate'")
    dynamic = req.batch == "dynamic"
    onnx_req = BuildRequest(**{**asdict(_onnx_request(req, onnx_precision)), "batch": req.batch})
    onnx_path = get_artifact(onnx_req).path
    max_batch = req.max_batch if dynamic else int(req.batch)
    opts = EngineOptions(min_batch=1 if dynamic else max_batch, opt_batch=max_batch if not dynamic else 1,
                         max_batch=max_batch, **req.options)
    return build_engine(onnx_path, path, opts)


FORMAT_BACKENDS = {"onnx": "onnxruntime", "openvino": "openvino", "torch": "torch", "engine": "tensorrt"}


def export_artifact(req: BuildRequest, out_dir: str | Path, name: str | None = None) -> Path:
    """Build the artifact for req.backend into out_dir (not the cache); returns its path."""
    from edgedet.runtimes.registry import get_backend

    backend = get_backend(req.backend).name
    suffix, build = _BUILDERS[backend]
    path = Path(out_dir) / f"{name or req.model}{suffix}"
    return build(_with_class_names(BuildRequest(**{**asdict(req), "backend": backend})), path)
