"""The search space of `edgedet tune`, from the tables: models x input sizes x backends x devices x precisions x
runtime options.

Nothing here names a backend. A backend row (edgedet.registry.BACKENDS) is in the space when its library is
installed and it runs on a device kind present here; its format's build precisions, its runner's declared runtime
precision option (`inference_precision`) and its `exact_options` (f32 arithmetic) give the precisions it can
execute; its `run_options` per mode give the hint; INT8 comes from `calibrate`'s strategy rows
(converters/int8/strategies.py). Candidates that turn out to execute the same thing (a hint a device ignores, a
format without in-graph post-processing) are merged after loading, by what they actually ran.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache

from edgedet.configs import get_config
from edgedet.errors import InputError
from edgedet.registry import BACKENDS, BackendSpec, get_backend

SIZE_STEP = 128  # smaller input sizes are multiples of this (EfficientDet needs multiples of 2^max_level)
# build precisions below fp32 only where the device computes them natively; CPU backends convert them back to float
REDUCED_BUILDS_ON = ("cuda", "gpu")
POSTPROCESS = ("host", "graph")
EXACT, DEFAULT = "f32", "default"


def cuda_present() -> bool:
    """A CUDA GPU is visible (cuda-python, else torch where it is installed)."""
    try:
        from edgedet.cuda import device_properties

        device_properties(0)
        return True
    except Exception:
        pass
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


# device kinds a search may use when --device is not given: the CPU, and a CUDA GPU when one is visible
PRESENT = {"cpu": lambda: True, "cuda": cuda_present}


@dataclass(frozen=True)
class Candidate:
    model: str
    weights: str | None
    imgsz: int
    backend: str
    device: str
    build: str  # build precision: fp32 | fp16 | int8 (from calibrate)
    runtime: str  # runtime precision asked: f32 (the row's exact_options), bf16/f16 (inference_precision), default
    postprocess: str = "host"
    mode: str = "latency"  # latency | throughput: the row's run_options, and how speed is measured
    batch: int = 1
    options: tuple = field(default=())  # further runtime options, (name, value) pairs

    @property
    def spec(self) -> BackendSpec:
        return get_backend(self.backend)

    def runtime_options(self) -> dict:
        out = self.spec.options_for(self.mode)
        if self.runtime == EXACT:
            out.update(self.spec.exact_options)
        elif self.runtime != DEFAULT:
            out["inference_precision"] = self.runtime
        out.update(dict(self.options))
        return out

    def build_keywords(self) -> dict:
        kw = {"precision": self.build, "imgsz": self.imgsz, "postprocess": self.postprocess, "batch": self.batch}
        if self.weights:
            kw["weights"] = self.weights
        return kw

    def key(self) -> str:
        body = {**asdict(self), "weights": weights_hash(self.weights)}
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:20]

    @property
    def label(self) -> str:
        runtime = "" if self.runtime == DEFAULT else f":{self.runtime}"
        extra = "".join(f",{k}={v}" for k, v in self.options)
        batch = f" b{self.batch}" if self.batch > 1 else ""
        device = "" if self.device == "cpu" else f" {self.device}"
        return (
            f"{self.model}@{self.imgsz} {self.backend}{runtime}{extra} {self.build} {self.postprocess}{batch}{device}"
        )

    def with_(self, **changes) -> "Candidate":
        from dataclasses import replace

        return replace(self, **changes)


@lru_cache(maxsize=32)
def weights_hash(weights: str | None) -> str | None:
    if not weights or str(weights).lower() == "coco":
        return weights
    from pathlib import Path

    from edgedet.weights import file_sha256

    if not Path(weights).is_file():
        raise InputError(f"weights file not found: {weights}")
    return file_sha256(weights)


def parse_models(text: str) -> list[tuple[str, str | None]]:
    """'d0=w0.pth,d1=w1.pth' (or 'd0' for random init, 'd0=coco' for the published checkpoint) -> [(name, weights)]."""
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, weights = item.partition("=")
        get_config(name.strip())  # unknown model: InputError naming the choices
        out.append((name.strip().lower(), weights.strip() or None))
    if not out:
        raise InputError("--model: give at least one model, e.g. d0=weights.pth")
    return out


def sizes_for(model: str, imgsz: int | None, sizes: list[int] | None) -> list[int]:
    """The model's own input size (or --imgsz) and every smaller multiple of SIZE_STEP, largest first; or --sizes."""
    if sizes:
        return sorted(set(sizes), reverse=True)
    own = imgsz or max(get_config(model).image_size)
    out = [own] + [s for s in range((own - 1) // SIZE_STEP * SIZE_STEP, 0, -SIZE_STEP) if s >= SIZE_STEP]
    return out


def backends_for(names: list[str] | None) -> list[BackendSpec]:
    """The installed backends that run a local artifact (not a server's client), or the named ones."""
    specs = [get_backend(n) for n in names] if names else list(BACKENDS.values())
    return [s for s in specs if not s.schemes and s.available()]


def devices_for(spec: BackendSpec, device: str | None) -> list[str]:
    if device is not None:
        from edgedet.devices import parse_device

        return [device] if parse_device(device).kind in spec.devices else []
    return [kind for kind in spec.devices if kind in PRESENT and PRESENT[kind]()]


def runtime_precisions(spec: BackendSpec) -> list[str]:
    """f32 through the row's exact options, each precision the runner's `inference_precision` option declares, and
    the runner's own default where it has no such option (torch on CUDA runs fp16 unless told not to)."""
    declared = spec.runner_class().OPTIONS.get("inference_precision")
    if declared is not None:
        return [EXACT] + [p for p in declared.choices if p != EXACT]
    return [EXACT, DEFAULT] if spec.exact_options else [DEFAULT]


def build_precisions(spec: BackendSpec, device: str) -> list[str]:
    from edgedet.devices import parse_device

    precisions = list(spec.build_format.precisions)
    return precisions if parse_device(device).kind in REDUCED_BUILDS_ON else [p for p in precisions if p == "fp32"]


def space(
    models: list[tuple[str, str | None]],
    backends: list[BackendSpec],
    imgsz: int | None = None,
    sizes: list[int] | None = None,
    device: str | None = None,
    mode: str = "latency",
    batches: tuple[int, ...] = (1,),
) -> list[Candidate]:
    """Every float candidate of the space, cheapest model and size first."""
    out = []
    for model, weights in models:
        for size in sizes_for(model, imgsz, sizes):
            for spec in backends:
                for dev in devices_for(spec, device):
                    for build in build_precisions(spec, dev):
                        for runtime in runtime_precisions(spec):
                            for post in POSTPROCESS:
                                for batch in batches:
                                    out.append(
                                        Candidate(
                                            model, weights, size, spec.name, dev, build, runtime, post, mode, batch
                                        )
                                    )
    if not out:
        raise InputError("the search space is empty: no installed backend runs on this device")
    return sorted(out, key=lambda c: (_flops_rank(c.model), c.imgsz))


def _flops_rank(model: str) -> float:
    cfg = get_config(model)
    return cfg.fpn_channels * cfg.fpn_repeats * max(cfg.image_size) ** 2
