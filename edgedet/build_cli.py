"""`edgedet build --backend trt`: ONNX (exported, or a given one such as calibrate's Q/DQ ONNX) -> static
TensorRT check -> engine with manifest. Without TensorRT the checked ONNX is kept and the equivalent trtexec
command is printed, then the command fails naming the extra to install."""
from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

from .cli import _batch, _emit, _positive, command
from .errors import BackendUnavailableError, InputError


@command("build", "build a TensorRT engine (FP16/FP32 from a model, INT8 from calibrate's Q/DQ ONNX)")
def _build_args(p):
    p.add_argument("--model", required=True, help="model name, or an .onnx with its manifest (e.g. int8/*_trt_qdq.onnx)")
    p.add_argument("--backend", default="trt", choices=["trt", "tensorrt"])
    p.add_argument("--weights", help="weights for a model name")
    p.add_argument("--imgsz", type=_positive)
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp16",
                   help="for a model name (an ONNX keeps its own precision)")
    p.add_argument("--batch", type=_batch, default=1, help="static batch or 'dynamic'")
    p.add_argument("--min-batch", type=_positive, default=1)
    p.add_argument("--opt-batch", type=_positive, help="default: 1 (static: the batch)")
    p.add_argument("--max-batch", type=_positive, default=32)
    p.add_argument("--postprocess", choices=["host", "graph"], default="graph",
                   help="graph: TopK + NonMaxSuppression in the engine (standard ops, no plugins)")
    p.add_argument("--workspace-mb", type=_positive, default=2048, help="builder workspace (small boards: 512)")
    p.add_argument("--opt-level", type=int, default=3, help="builder optimisation level 0..5")
    p.add_argument("--timing-cache", help="timing cache file, reused and updated across builds")
    p.add_argument("--dla-core", type=int, help="Jetson DLA core (GPU fallback on)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--json", action="store_true")
    return _build


def _build(a) -> int:
    from .converters.pipeline import BuildRequest, export_artifact
    from .converters.tensorrt_engine import EngineOptions, build_engine, import_tensorrt, trtexec_command
    from .converters.trt_check import check_tensorrt_onnx
    from .manifest import Manifest, manifest_path
    from .progress import spinner

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    src = Path(a.model)
    if src.suffix.lower() == ".onnx":
        if not src.is_file():
            raise InputError(f"ONNX not found: {src}")
        onnx_path = out / src.name
        if onnx_path.resolve() != src.resolve():
            shutil.copyfile(src, onnx_path)
            if manifest_path(src).is_file():
                shutil.copyfile(manifest_path(src), manifest_path(onnx_path))
    elif src.suffix:
        raise InputError(f"--model takes a model name or an .onnx file, got {src}")
    else:
        req = BuildRequest(model=a.model, backend="onnxruntime", precision=a.precision, weights=a.weights,
                           imgsz=a.imgsz, batch=a.batch, max_batch=a.max_batch, postprocess=a.postprocess)
        with spinner(f"exporting {a.model} to ONNX ({a.precision}) for TensorRT"):
            onnx_path = export_artifact(req, out, name=f"{a.model}_{a.precision}")
    rep = check_tensorrt_onnx(onnx_path, a.min_batch, a.max_batch)  # first: it needs only the ONNX
    for f in rep.findings:
        print(f"{f.level:7s} {f.message}", file=sys.stderr)
    if not rep.ok:
        print(f"FAIL: {onnx_path} does not pass the TensorRT check; no engine built", file=sys.stderr)
        return 1
    manifest = Manifest.read(onnx_path)
    dynamic = bool(manifest.batch.get("dynamic"))
    static = int(manifest.batch.get("max", 1))
    opts = EngineOptions(min_batch=a.min_batch if dynamic else static,
                         opt_batch=(a.opt_batch or a.min_batch) if dynamic else static,
                         max_batch=a.max_batch if dynamic else static, workspace_mb=a.workspace_mb,
                         optimization_level=a.opt_level, timing_cache=a.timing_cache, dla_core=a.dla_core)
    opts.validate()

    engine_path = onnx_path.with_suffix(".engine")
    try:
        import_tensorrt()
    except BackendUnavailableError:
        cmd = trtexec_command(onnx_path, engine_path, manifest.precision, manifest.input["name"],
                              manifest.input["shape"], opts)
        print(f"{onnx_path} passes the TensorRT check. To build where TensorRT's tools exist:\n  "
              + " ".join(shlex.quote(c) for c in cmd)
              + ("\n  (TensorRT >= 10: --stronglyTyped in place of --fp16)" if "--fp16" in cmd else ""),
              file=sys.stderr)
        raise
    with spinner(f"building TensorRT engine from {onnx_path.name}"):
        build_engine(onnx_path, engine_path, opts)
    _emit({"engine": str(engine_path), "manifest": str(manifest_path(engine_path)), "onnx": str(onnx_path)}, a.json,
          f"wrote {engine_path}\n      {manifest_path(engine_path)}")
    return 0
