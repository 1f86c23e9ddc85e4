"""Model name -> artifact of a format, through the artifact cache.

Each format's builder is named in edgedet.registry.FORMATS (builders.py here). The cache key holds
everything that changes the artifact: model, weights hash, input size, batch profile, precision,
post-processing, builder options, the format's library version and, for device-specific formats (engines),
the GPU. A hit is reused only if its manifest verifies against its files; anything else is rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgedet.configs import get_config
from edgedet.devices import parse_device
from edgedet.errors import ArtifactError, EdgeDetError, InputError
from edgedet.fileio import locked
from edgedet.manifest import Manifest
from edgedet.options import validate_options
from edgedet.registry import FormatSpec, get_format, load_object
from edgedet.weights import cache_dir, file_sha256


@dataclass(frozen=True)
class BuildRequest:
    model: str
    format: str  # a FORMATS name: onnx | openvino | tensorrt | torch
    precision: str = "fp32"
    weights: str | None = None
    num_classes: int | None = None
    imgsz: int | None = None
    batch: int | str = 1
    max_batch: int = 32
    postprocess: str = "host"
    device: str | None = None  # device-specific formats (engines): the GPU to build for
    class_names: tuple[str, ...] | None = None
    options: dict = field(default_factory=dict)  # the builder's declared options (builder.OPTIONS)

    def replace(self, **changes) -> "BuildRequest":
        return dataclasses.replace(self, **changes)

    @property
    def spec(self) -> FormatSpec:
        return get_format(self.format)


@dataclass
class BuildResult:
    path: Path
    cached: bool
    seconds: float


def builder(spec: FormatSpec):
    fn = load_object(spec.builder)
    return fn


def normalize(req: BuildRequest) -> BuildRequest:
    """Parse and check a request once: format name, model name, precision, builder options, class names."""
    spec = get_format(req.format)
    get_config(req.model)  # unknown model -> InputError naming the choices
    if req.precision not in spec.precisions:
        raise InputError(
            f"{spec.name} artifacts are built in {', '.join(spec.precisions)}, not {req.precision!r} "
            "(INT8 comes from 'edgedet calibrate')"
        )
    fn = builder(spec)
    opts = validate_options(f"the {spec.name} builder", getattr(fn, "OPTIONS", {}), req.options)
    opts = {k: v for k, v in opts.items() if v is not None}
    weights = None if req.weights is None else str(req.weights)
    return _with_class_names(req.replace(format=spec.name, options=opts, weights=weights))


def _library_version(spec: FormatSpec) -> str:
    from importlib import metadata

    try:
        return metadata.version(spec.library)
    except metadata.PackageNotFoundError:
        return "absent"


def _device_identity(req: BuildRequest) -> dict | None:
    """Engines are specific to the GPU model and compute capability: they are part of the cache key."""
    if not req.spec.device_specific:
        return None
    from edgedet.cuda import device_properties

    props = device_properties(parse_device(req.device, default="cuda").ordinal)
    return {"gpu": props["gpu"], "compute_capability": props["compute_capability"]}


def cache_key(req: BuildRequest) -> str:
    weights_hash = None
    if req.weights is not None and str(req.weights).lower() != "coco":
        p = Path(req.weights)
        if not p.is_file():
            raise ArtifactError(f"weights file not found: {p}")
        weights_hash = file_sha256(p)
    key = {
        **asdict(req),
        "weights": weights_hash or req.weights,
        "lib": _library_version(req.spec),
        "device_identity": _device_identity(req),
        "v": 2,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _with_class_names(req: BuildRequest) -> BuildRequest:
    """Take the class names a trained checkpoint carries unless the request names them."""
    if req.class_names is not None or req.weights is None or str(req.weights).lower() == "coco":
        return req
    from edgedet.model.factory import checkpoint_class_names

    names = checkpoint_class_names(req.weights)
    return req.replace(class_names=tuple(names)) if names else req


def get_artifact(req: BuildRequest, rebuild: bool = False, root: Path | None = None) -> BuildResult:
    """The cached artifact for req, built if missing or damaged."""
    req = normalize(req)
    spec = req.spec
    folder = (root or cache_dir() / "artifacts") / f"{req.model}-{spec.name}-{req.precision}-{cache_key(req)}"
    path = folder / f"{req.model}{spec.suffix}"
    with locked(folder.with_name(folder.name + ".lock")):  # one builder per entry, across processes
        if not rebuild and path.is_file():
            try:
                Manifest.read(path, verify=True)
                return BuildResult(path, True, 0.0)
            except EdgeDetError:
                pass  # stale or damaged cache entry: rebuilt below (written aside, then put in place)
        t0 = time.perf_counter()
        builder(spec)(req, path)
        return BuildResult(path, False, time.perf_counter() - t0)


def export_artifact(req: BuildRequest, out_dir: str | Path, name: str | None = None) -> Path:
    """Build the artifact of req.format into out_dir (not the cache); returns its path."""
    req = normalize(req)
    path = Path(out_dir) / f"{name or req.model}{req.spec.suffix}"
    return builder(req.spec)(req, path)
