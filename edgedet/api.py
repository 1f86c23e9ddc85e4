"""The facade: `edgedet.load()` turns a model name or an artifact into a Detector.

This is the one place (with the CLI and integrations) that uses both converters and runtimes: a model name is
built through the artifact cache (converters), then loaded (runtimes). The core and the runtimes never
import the converters (docs/architecture.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InputError
from .registry import BACKENDS, BackendSpec, get_backend

if TYPE_CHECKING:
    from .auto_backend import Choice

# keyword arguments of load() that describe the artifact to build for a model name (the rest are runtime options)
BUILD_KEYS = (
    "weights",
    "imgsz",
    "precision",
    "batch",
    "max_batch",
    "postprocess",
    "num_classes",
    "class_names",
    "build_options",
)


def choose_backend(model: str, **build_kw) -> "Choice":
    """The measured default backend for a model name on this machine (edgedet.auto_backend): a Choice with the
    spec and the reason."""
    from .auto_backend import choose

    def load_on(spec):
        from .runtimes import Detector

        built = build(model, spec, **build_kw)
        return Detector.load(built.path, backend=spec, **spec.options_for("latency"))

    return choose(model, {k: str(v) for k, v in build_kw.items()}, load_on, _probe_image())


def fastest_backend(model: str | None = None, device: str | None = None, **build_kw) -> BackendSpec:
    """The measured fastest installed CPU backend for `model` (cached per machine); without a model, the first
    installed candidate. For a device other than the CPU, the first installed backend that runs on it."""
    from .auto_backend import candidates
    from .devices import parse_device

    kind = parse_device(device).kind
    if kind != "cpu":
        on_device = [b for b in BACKENDS.values() if kind in b.devices and b.available()]
        if not on_device:
            raise InputError(f"no installed backend runs on device '{device}'")
        return on_device[0]
    if model is None:
        specs = candidates()
        return specs[0] if specs else BACKENDS["onnxruntime"]
    return choose_backend(model, **build_kw).backend


def _probe_image():
    """A real photograph (scikit-image) or a textured frame: what the timing runs on."""
    import numpy as np

    try:
        import cv2
        from skimage import data

        return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    except ImportError:
        rng = np.random.default_rng(0)
        return rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)


def _timing_keys(build_kw: dict) -> dict:
    """The build keywords that change what the default-backend measurement times."""
    return {k: build_kw[k] for k in ("weights", "imgsz", "num_classes", "postprocess") if build_kw.get(k) is not None}


def is_model_name(source) -> bool:
    """A model to build ('d0', 'lite2', ...) rather than an artifact file or a server URL. A known model name stays
    one even when a folder of that name exists here (an export's --out folder must not shadow it)."""
    from .configs import MODELS

    text = str(source)
    p = Path(text)
    if "://" in text or p.is_file():
        return False
    return text.lower() in MODELS or (not p.suffix and not p.exists())


def build(
    model: str, backend: "str | BackendSpec | None" = None, device: str | None = None, rebuild: bool = False, **build_kw
):
    """The cached artifact of `model` for a backend (its first format); returns a converters BuildResult."""
    from .converters.pipeline import BuildRequest, get_artifact

    spec = get_backend(backend) if backend is not None else fastest_backend(model, **_timing_keys(build_kw))
    options = dict(build_kw.pop("build_options", None) or {})
    names = build_kw.pop("class_names", None)
    req = BuildRequest(
        model=str(model),
        format=spec.build_format.name,
        device=device,
        options=options,
        class_names=tuple(names) if names else None,
        **build_kw,
    )
    return get_artifact(req, rebuild=rebuild)


def load(
    source, backend: "str | BackendSpec | None" = None, device: str | None = None, rebuild: bool = False, **kwargs
):
    """A Detector for an artifact path or a model name.

    Model names ('d0', 'lite2', ...) are built through the artifact cache with the build keywords
    (weights, imgsz, precision, batch, max_batch, postprocess, num_classes, class_names, build_options); the
    other keywords are the Detector's (score_threshold, verify) and the backend's runtime options. An option
    that neither the build nor the backend declares is an InputError."""
    from .runtimes import Detector

    build_kw = {k: kwargs.pop(k) for k in BUILD_KEYS if k in kwargs}
    if not is_model_name(source):
        if build_kw:
            raise InputError(
                f"{', '.join(build_kw)} applies to model names only; '{source}' is an artifact "
                "(its manifest fixes how it was built)"
            )
        return Detector.load(source, backend=backend, device=device, **kwargs)
    if build_kw.get("weights") is not None:
        build_kw["weights"] = str(build_kw["weights"])
    spec = (
        get_backend(backend)
        if backend is not None
        else fastest_backend(str(source), device=device, **_timing_keys(build_kw))
    )
    built = build(str(source), spec, device if spec.build_format.device_specific else None, rebuild, **build_kw)
    return Detector.load(built.path, backend=spec, device=device, **kwargs)
