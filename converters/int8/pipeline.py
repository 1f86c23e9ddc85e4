"""`edgedet calibrate`: calibrate once, write the INT8 artifact each backend runs fastest, gate on mAP.

Gate: with a validation set, FP32 and INT8 mAP are measured through the Detector. While the drop exceeds the
budget, the next group of sensitive layers is kept in float and the artifact is rebuilt: head predict convs,
then the stem and first backbone blocks, then every head conv. The report says which layers stayed float,
the final drop, and whether the gate passed; an artifact that failed is marked so in its manifest.
"""
from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgedet.errors import InputError
from edgedet.fileio import write_json_atomic
from edgedet.manifest import Manifest, describe_artifact, manifest_path, tool_versions
from edgedet.weights import cache_dir

from .calibration import cache_key, load_calibration

# Groups of layers kept in float, tried in this order when the gate fails (regexes on node names).
FLOAT_GROUPS = [
    ("head predict convs", [r"(class|box)_net/predict"]),
    ("stem and first blocks", [r"backbone/conv_stem", r"backbone/blocks\.0[./]", r"backbone/blocks\.1[./]"]),
    ("all head convs", [r"(class|box)_net/"]),
]
BACKENDS = ("openvino", "onnxruntime", "tensorrt")


@dataclass
class CalibrateRequest:
    model: str
    calib: str
    out: str
    weights: str | None = None
    imgsz: int | None = None
    num: int = 300
    every: int | None = None
    method: str = "percentile"  # 99.99th percentile: minmax failed the gate on the reference model
    backends: tuple[str, ...] = ("openvino", "onnxruntime")
    val: str | None = None
    val_images: str | None = None
    max_map_drop: float = 0.01
    presets: tuple[str, ...] = ("performance", "mixed")
    report: dict = field(default_factory=dict)


def _fp32_onnx(req: CalibrateRequest) -> Path:
    p = Path(req.model)
    if p.suffix == ".onnx":
        Manifest.read(p)
        return p
    from ..pipeline import BuildRequest, get_artifact
    return get_artifact(BuildRequest(model=req.model, backend="onnxruntime", weights=req.weights,
                                     imgsz=req.imgsz)).path


def _evaluate(path: Path, req: CalibrateRequest, backend: str | None = None) -> float:
    from edgedet.evaluation import evaluate_detector
    from edgedet.runtimes import Detector
    opts = {"precision": "f32"} if (backend == "openvino" or path.suffix == ".xml") else {}
    det = Detector.load(path, backend=backend, **opts)
    return evaluate_detector(det, req.val, req.val_images)["AP"]


def _matching(names: list[str], patterns: list[str]) -> list[str]:
    rx = [re.compile(p) for p in patterns]
    return [n for n in names if any(r.search(n) for r in rx)]


def _write_manifest(src: Manifest, path: Path, backend: str, calib: dict, extra_files=()) -> None:
    m = Manifest(**{**src.to_dict(), "created": "", "artifact": {}})
    m.precision = "int8"
    m.calibration = calib
    m.tools = {**src.tools, **tool_versions("onnxruntime", "openvino", "nncf")}
    m.extra = {**src.extra, "int8_form": backend, "source_onnx_sha256": src.artifact.get("sha256")}
    m.artifact = describe_artifact(path, "openvino" if path.suffix == ".xml" else "onnx", extra_files)
    m.write(path)


def _build(backend: str, fp32: Path, out: Path, tensors, req, ranges: Path, patterns: list[str], preset: str) -> Path:
    from .onnx_qdq import conv_nodes, quantize_qdq
    stem = Path(req.model).stem
    if backend == "openvino":
        import openvino as ov
        from ..openvino_ir import save_ir
        from .openvino_nncf import quantize_nncf
        model = ov.convert_model(str(fp32))
        names = [op.get_friendly_name() for op in model.get_ordered_ops()]
        q = quantize_nncf(model, [{"images": t} for t in tensors], preset, _matching(names, patterns))
        path = out / f"{stem}_int8_openvino.xml"
        save_ir(q, path, Manifest.read(fp32), compress_to_fp16=False)
        return path
    form = "tensorrt" if backend == "tensorrt" else "onnxruntime"
    path = out / f"{stem}_int8_{form}.onnx"
    tmp = out / f".{path.name}.tmp.onnx"
    quantize_qdq(fp32, tmp, tensors if not ranges.is_file() else None, form, req.method, ranges,
                 _matching(conv_nodes(fp32), patterns))
    manifest_path(path).unlink(missing_ok=True)
    shutil.move(tmp, path)
    # Provisional manifest so the candidate can be evaluated; the final one (with the gate) replaces it.
    _write_manifest(Manifest.read(fp32), path, backend, {"provisional": True, "float_patterns": patterns})
    return path


def calibrate(req: CalibrateRequest, log=print) -> dict:
    if not 0 <= req.max_map_drop < 1:
        raise InputError("--max-map-drop must be in [0, 1)")
    bad = [b for b in req.backends if b not in BACKENDS]
    if bad:
        raise InputError(f"unknown INT8 backend(s) {bad}; choose from {', '.join(BACKENDS)}")
    out = Path(req.out)
    out.mkdir(parents=True, exist_ok=True)
    fp32 = _fp32_onnx(req)
    src = Manifest.read(fp32)
    t0 = time.perf_counter()
    cal = load_calibration(req.calib, req.num, req.every, tuple(src.model["image_size"]), src.model["num_classes"])
    tensors = cal.tensors(src.model["image_size"], src.input["mean"], src.input["std"])
    ranges = cache_dir() / "calibration" / f"{cache_key(src.artifact['sha256'], cal.data_hash, req.method)}.json"
    ranges.parent.mkdir(parents=True, exist_ok=True)
    log(f"calibration: {len(tensors)} images, data hash {cal.data_hash[:12]}, method {req.method}, "
        f"ranges {'cached' if ranges.is_file() else 'computed'} at {ranges}")
    fp32_ap = _evaluate(fp32, req) if req.val else None
    report = {"fp32_onnx": str(fp32), "calibration": {"images": len(tensors), "data_hash": cal.data_hash,
              "method": req.method, "warnings": cal.warnings, "ranges_file": str(ranges)},
              "fp32_AP": fp32_ap, "max_map_drop": req.max_map_drop, "artifacts": []}
    for backend in req.backends:
        # Presets are compared by mAP: without a validation set only the first can be chosen, so build only it.
        presets = (req.presets if req.val else req.presets[:1]) if backend == "openvino" else ("-",)
        best = None
        for rounds in range(len(FLOAT_GROUPS) + 1):
            groups = FLOAT_GROUPS[:rounds]
            patterns = [p for _, ps in groups for p in ps]
            for preset in presets:
                tb = time.perf_counter()
                path = _build(backend, fp32, out, tensors, req, ranges, patterns, preset)
                ap = _evaluate(path, req, "onnxruntime" if backend == "tensorrt" else None) if req.val else None
                row = {"backend": backend, "artifact": str(path), "preset": preset, "float_layers": [g for g, _ in groups],
                       "AP": ap, "drop": None if ap is None else round(fp32_ap - ap, 5),
                       "build_s": round(time.perf_counter() - tb, 1)}
                row["passed"] = None if ap is None else row["drop"] <= req.max_map_drop
                log(f"  {backend:<11} preset {preset:<11} float: {', '.join(row['float_layers']) or 'none':<40} "
                    + (f"AP {ap:.4f} (drop {row['drop']:+.4f}) {'PASS' if row['passed'] else 'over budget'}"
                       if ap is not None else "no validation set: not gated"))
                if best is None or (ap is not None and ap > best["AP"]):
                    best = row
                    keep = out / f".best_{backend}"
                    _stash(path, keep)
            if best["passed"] is not False:
                break
        final = _unstash(out / f".best_{backend}")
        best["artifact"] = str(final)
        calib = {**report["calibration"], "float_layers": best["float_layers"], "preset": best["preset"],
                 "gate": {"fp32_AP": fp32_ap, "int8_AP": best["AP"], "drop": best["drop"],
                          "max_map_drop": req.max_map_drop, "passed": best["passed"]}}
        _write_manifest(src, final, backend, calib,
                        [final.with_suffix(".bin").name] if final.suffix == ".xml" else [])
        if best["passed"] is False:
            log(f"WARNING: {backend} INT8 failed the gate (drop {best['drop']:+.4f} > {req.max_map_drop}): "
                f"{final} is marked 'passed: false' in its manifest")
        report["artifacts"].append(best)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    write_json_atomic(out / "calibration_report.json", report)
    return report


def _stash(path: Path, keep: Path) -> None:
    """Keep a copy of the best candidate so far (the next attempt overwrites the output path)."""
    if keep.exists():
        shutil.rmtree(keep)
    keep.mkdir()
    for f in [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]:
        shutil.copy(f, keep / f.name)


def _unstash(keep: Path) -> Path:
    files = sorted(keep.iterdir())
    main = next(f for f in files if f.suffix in (".xml", ".onnx"))
    for f in files:
        shutil.move(f, keep.parent / f.name)
    shutil.rmtree(keep)
    return keep.parent / main.name
