"""`edgedet calibrate`: calibrate once, write the INT8 artifact each backend runs fastest, gate on mAP.

Gate: with a validation set, FP32 and INT8 mAP are measured through the Detector. While the drop exceeds the
budget, the next group of sensitive layers is kept in float and the artifact is rebuilt: head predict convs,
then the stem and first backbone blocks, then every head conv. The report says which layers stayed float,
the final drop, and whether the gate passed; an artifact that failed is marked so in its manifest.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgedet.errors import InputError
from edgedet.fileio import write_json_atomic
from edgedet.manifest import Manifest, manifest_path, tool_versions
from edgedet.registry import format_of, load_object
from edgedet.weights import cache_dir

from . import gate
from .builders import BuildContext
from .calibration import cache_key, load_calibration
from .strategies import Strategy, strategy_for

# Groups of layers kept in float, tried in this order when the gate fails (regexes on node names).
FLOAT_GROUPS = [
    ("head predict convs", [r"(class|box)_net/predict"]),
    ("stem and first blocks", [r"backbone/conv_stem", r"backbone/blocks\.0[./]", r"backbone/blocks\.1[./]"]),
    ("all head convs", [r"(class|box)_net/"]),
]


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
    return get_artifact(BuildRequest(model=req.model, format="onnx", weights=req.weights, imgsz=req.imgsz)).path


def _evaluate(path: Path, req: CalibrateRequest, strategy: Strategy | None = None) -> float:
    if strategy is None:
        return gate.evaluate(path, req.val, req.val_images)
    return gate.evaluate(path, req.val, req.val_images, strategy.evaluate_backend or strategy.backend)


def _final_manifest(src: Manifest, path: Path, strategy: Strategy, calib: dict) -> None:
    m = src.derive(precision="int8", calibration=calib, tools=tool_versions("onnxruntime", "openvino", "nncf"),
                   extra={"int8_form": strategy.backend, "int8_strategy": strategy.name,
                          "source_onnx_sha256": src.artifact.sha256})
    m.write(path)


def _log_row(row: dict, log) -> None:
    gated = (f"AP {row['AP']:.4f} (drop {row['drop']:+.4f}) {'PASS' if row['passed'] else 'over budget'}"
             if row["AP"] is not None else "no validation set: not gated")
    log(f"  {row['backend']:<11} preset {row['preset']:<11} float: {', '.join(row['float_layers']) or 'none':<40} "
        + gated)


def _gate_strategy(strategy: Strategy, fp32: Path, out: Path, ctx: BuildContext, req, fp32_ap, log) -> dict:
    """Build, evaluate and, while the drop is over budget, keep the next layer group in float; the best
    candidate is kept in `out`."""
    presets = strategy.presets if req.val else strategy.presets[:1]  # presets are compared by mAP
    path = strategy.path(out, Path(req.model).stem)
    build = load_object(strategy.build)
    keep = out / f".best_{strategy.backend}"
    best = None
    for rounds in range(len(FLOAT_GROUPS) + 1):
        groups = FLOAT_GROUPS[:rounds]
        for preset in presets:
            tb = time.perf_counter()
            ctx.float_patterns, ctx.preset = [p for _, ps in groups for p in ps], preset
            build(fp32, path, ctx)
            ap = _evaluate(path, req, strategy) if req.val else None
            row = {"backend": strategy.backend, "strategy": strategy.name, "artifact": str(path), "preset": preset,
                   "float_layers": [g for g, _ in groups], "AP": ap,
                   "drop": None if ap is None else round(fp32_ap - ap, 5), "build_s": round(time.perf_counter() - tb, 1),
                   "round": rounds}
            row["passed"] = None if ap is None else row["drop"] <= req.max_map_drop
            _log_row(row, log)
            if best is None or (ap is not None and ap > best["AP"]):
                best = row
                _stash(path, keep)
        if best["passed"] is not False:
            break
    best["artifact"] = str(_unstash(keep))
    best["rounds"] = rounds + 1
    return best


def calibrate(req: CalibrateRequest, log=print) -> dict:
    if not 0 <= req.max_map_drop < 1:
        raise InputError("--max-map-drop must be in [0, 1)")
    strategies = [strategy_for(b) for b in req.backends]
    out = Path(req.out)
    out.mkdir(parents=True, exist_ok=True)
    fp32 = _fp32_onnx(req)
    src = Manifest.read(fp32)
    t0 = time.perf_counter()
    cal = load_calibration(req.calib, req.num, req.every, src.image_size, src.model["num_classes"])
    tensors = cal.tensors(src.image_size, src.input.mean, src.input.std)
    ranges = cache_dir() / "calibration" / f"{cache_key(src.artifact.sha256, cal.data_hash, req.method)}.json"
    ranges.parent.mkdir(parents=True, exist_ok=True)
    log(f"calibration: {len(tensors)} images, data hash {cal.data_hash[:12]}, method {req.method}, "
        f"ranges {'cached' if ranges.is_file() else 'computed'} at {ranges}")
    fp32_ap = _evaluate(fp32, req) if req.val else None
    report = {"fp32_onnx": str(fp32), "calibration": {"images": len(tensors), "data_hash": cal.data_hash,
              "method": req.method, "warnings": cal.warnings, "ranges_file": str(ranges)},
              "fp32_AP": fp32_ap, "max_map_drop": req.max_map_drop, "artifacts": []}
    ctx = BuildContext(tensors, src.input.name, req.method, ranges, [], "-")
    for strategy in strategies:
        best = _gate_strategy(strategy, fp32, out, ctx, req, fp32_ap, log)
        calib = {**report["calibration"], "float_layers": best["float_layers"], "preset": best["preset"],
                 "strategy": strategy.name,
                 "gate": {"fp32_AP": fp32_ap, "int8_AP": best["AP"], "drop": best["drop"],
                          "max_map_drop": req.max_map_drop, "passed": best["passed"]}}
        _final_manifest(src, Path(best["artifact"]), strategy, calib)
        if best["passed"] is False:
            log(f"WARNING: {strategy.backend} INT8 failed the gate (drop {best['drop']:+.4f} > {req.max_map_drop}): "
                f"{best['artifact']} is marked 'passed: false' in its manifest")
        report["artifacts"].append(best)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    write_json_atomic(out / "calibration_report.json", report)
    return report


def _files(path: Path) -> list[Path]:
    return [path] + [path.with_suffix(s) for s in format_of(path).sidecars]


def _stash(path: Path, keep: Path) -> None:
    """Keep a copy of the best candidate so far (the next attempt overwrites the output path)."""
    if keep.exists():
        shutil.rmtree(keep)
    keep.mkdir()
    for f in _files(path):
        shutil.copy(f, keep / f.name)
    (keep / "main").write_text(path.name)


def _unstash(keep: Path) -> Path:
    main = keep.parent / (keep / "main").read_text()
    (keep / "main").unlink()
    manifest_path(main).unlink(missing_ok=True)   # the final manifest is written next
    for f in sorted(keep.iterdir()):
        shutil.move(f, keep.parent / f.name)
    shutil.rmtree(keep)
    return main
