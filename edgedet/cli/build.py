"""`edgedet build`: a deployable artifact for a backend from a model name or an ONNX file (such as
calibrate's Q/DQ ONNX): ONNX -> the backend's static check -> its format, with manifest. Where the format's
library is absent (TensorRT here), the checked ONNX is kept, the equivalent offline command (trtexec) is
printed, and the command fails naming the extra to install."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from edgedet.errors import BackendUnavailableError, InputError
from edgedet.registry import BACKENDS, build_precisions

from .check import print_report, static_check
from .common import batch, emit, names, positive

HELP = "build a deployable artifact (default: a TensorRT engine) from a model name or an ONNX"


def add_arguments(p):
    p.add_argument(
        "--model", required=True, help="model name, or an .onnx with its manifest (e.g. int8/*_tensorrt.onnx)"
    )
    p.add_argument(
        "--backend",
        default="tensorrt",
        help=f"backend to build for: {names(BACKENDS.values(), lambda b: b.build_format.from_onnx)} (its format is "
        "built; default tensorrt)",
    )
    p.add_argument("--device", help="GPU to build for (cuda, cuda:N)")
    p.add_argument("--weights", help="weights for a model name")
    p.add_argument("--imgsz", type=positive)
    p.add_argument(
        "--precision",
        choices=build_precisions(["tensorrt"]),
        help="for a model name (default fp16); an ONNX keeps its own precision",
    )
    p.add_argument("--batch", type=batch, default=1, help="static batch or 'dynamic'")
    p.add_argument("--min-batch", type=positive, default=1)
    p.add_argument("--opt-batch", type=positive, help="default: the min batch (static: the batch)")
    p.add_argument("--max-batch", type=positive, default=32)
    p.add_argument(
        "--postprocess",
        choices=["host", "graph"],
        default="graph",
        help="graph: TopK + NonMaxSuppression in the artifact (standard ops, no plugins)",
    )
    p.add_argument("--workspace-mb", type=positive, default=2048, help="TensorRT builder workspace (small boards: 512)")
    p.add_argument("--opt-level", type=int, default=3, help="TensorRT builder optimisation level 0..5")
    p.add_argument("--timing-cache", help="TensorRT timing cache file, reused and updated across builds")
    p.add_argument("--dla-core", type=int, help="Jetson DLA core (GPU fallback on; TensorRT <= 10.7)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--json", action="store_true")


def _onnx(a, out: Path) -> Path:
    from edgedet.converters.pipeline import BuildRequest, export_artifact
    from edgedet.fileio import publish
    from edgedet.manifest import Manifest, manifest_path
    from edgedet.progress import spinner

    src = Path(a.model)
    if src.suffix.lower() == ".onnx":
        if not src.is_file():
            raise InputError(f"ONNX not found: {src}")
        Manifest.read(src, verify=False)  # no manifest: refused before anything in --out is touched
        onnx_path = out / src.name
        if onnx_path.resolve() != src.resolve():
            with publish(onnx_path) as tmp:  # an artifact already in --out is replaced only as a pair
                shutil.copyfile(src, tmp)
                shutil.copyfile(manifest_path(src), manifest_path(tmp))
        return onnx_path
    if src.suffix:
        raise InputError(f"--model takes a model name or an .onnx file, got {src}")
    precision = a.precision or "fp16"
    req = BuildRequest(
        model=a.model,
        format="onnx",
        precision=precision,
        weights=a.weights,
        imgsz=a.imgsz,
        batch=a.batch,
        max_batch=a.max_batch,
        postprocess=a.postprocess,
    )
    with spinner(f"exporting {a.model} to ONNX ({precision})"):
        return export_artifact(req, out, name=f"{a.model}_{precision}")


ENGINE_FLAGS = ("device", "dla_core", "timing_cache", "opt_batch")


def _options(a, fmt, onnx_precision: str) -> dict:
    """The from_onnx options of the format: engines take the batch profile and builder settings; others take
    the ONNX's own precision, and refuse engine-only flags."""
    if not fmt.device_specific:
        given = [f"--{f.replace('_', '-')}" for f in ENGINE_FLAGS if getattr(a, f) is not None]
        if given:
            raise InputError(f"{', '.join(given)} apply to device-specific formats (TensorRT engines), not {fmt.name}")
        return {"precision": onnx_precision if onnx_precision in fmt.precisions else "fp32"}
    return {
        "min_batch": a.min_batch,
        "opt_batch": a.opt_batch,
        "max_batch": a.max_batch,
        "workspace_mb": a.workspace_mb,
        "optimization_level": a.opt_level,
        "timing_cache": a.timing_cache,
        "dla_core": a.dla_core,
        "device": a.device,
    }


def run(a) -> int:
    from edgedet.manifest import Manifest, manifest_path
    from edgedet.progress import spinner
    from edgedet.registry import get_backend, load_object

    spec = get_backend(a.backend)
    fmt = spec.build_format
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = _onnx(a, out)
    if spec.static_check:  # first: it needs only the ONNX
        rep = static_check(spec, onnx_path, a.min_batch, a.max_batch)
        print_report(rep, onnx_path, spec, file=sys.stderr)
        if not rep.ok:
            print(f"FAIL: {onnx_path} does not pass the {spec.name} check; nothing built", file=sys.stderr)
            return 1
    if fmt.name == Manifest.read(onnx_path).artifact.format:  # the checked ONNX is the artifact
        emit({"artifact": str(onnx_path), "manifest": str(manifest_path(onnx_path))}, a.json, f"wrote {onnx_path}")
        return 0
    if not fmt.from_onnx:
        raise InputError(
            f"backend '{spec.name}' runs {fmt.name} artifacts, which are not built from an ONNX: "
            f"use 'edgedet export --format {fmt.name}'"
        )
    target = onnx_path.with_suffix(fmt.suffix)
    options = _options(a, fmt, Manifest.read(onnx_path).precision)
    if not spec.available() and fmt.offline_command:
        line = load_object(fmt.offline_command)(onnx_path, target, options)
        print(
            f"{onnx_path} passes the {spec.name} check. To build where {spec.name}'s tools exist:\n  {line}",
            file=sys.stderr,
        )
        raise BackendUnavailableError(spec.name, spec.extra)
    with spinner(f"building {fmt.name} from {onnx_path.name}"):
        load_object(fmt.from_onnx)(onnx_path, target, options)
    emit(
        {"artifact": str(target), "manifest": str(manifest_path(target)), "onnx": str(onnx_path)},
        a.json,
        f"wrote {target}\n      {manifest_path(target)}",
    )
    return 0
