"""`edgedet compare` on the reference model: the three checks of issue 26, each run through the CLI and written with its
command to --out (one JSON per check, and summary.json).

    python -m edgedet.data.synthetic /tmp/ref --train 0 --val 40 --size 256 --seed 7
    edgedet calibrate --model d0 --weights tests/assets/reference_d0_shapes_fp16.pth --imgsz 256 \
        --calib CALIB_IMAGES --val /tmp/ref/val.json --backend openvino --out /tmp/int8
    python -m benchmarks.studies.compare_reference --data /tmp/ref/val.json --calibration /tmp/int8 \
        --out benchmarks/results/compare_reference

1. ONNX Runtime vs OpenVINO f32 (the same model built for each): every detection matched, score deltas <= 1e-3.
2. FP32 vs INT8 on OpenVINO in f32 arithmetic (as calibrate's gate evaluates both): the AP difference equals the
   gate's drop in calibration_report.json to 1e-4.
3. A planted wrong-anchor artifact (a copy of the FP32 IR whose manifest says another anchor_scale, re-written so it
   verifies): compare exits 1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from . import write_checks

REFERENCE = Path(__file__).resolve().parents[2] / "tests" / "assets" / "reference_d0_shapes_fp16.pth"


def run(name: str, argv: list[str], out: Path) -> dict:
    from edgedet.cli import main

    path = out / f"{name}.json"
    argv = [*argv, "--out", str(path), "--json"]
    t0 = time.perf_counter()
    rc = main(["compare", *argv])
    report = json.loads(path.read_text()) if path.is_file() else {}
    report = {"command": "edgedet compare " + " ".join(argv), "exit_code": rc, **report}
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def planted(fp32_ir: Path, folder: Path) -> Path:
    """A copy of the IR whose manifest's anchor_scale is halved and re-written (it verifies: a wrong artifact that
    every hash check accepts)."""
    from edgedet.manifest import Manifest

    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / fp32_ir.name
    for f in (fp32_ir, fp32_ir.with_suffix(".bin")):
        shutil.copy(f, folder / f.name)
    m = Manifest.read(fp32_ir)
    m.derive(model={**m.model, "anchor_scale": m.model["anchor_scale"] / 2}).write(dest)
    Manifest.read(dest)  # verifies
    return dest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="val.json of the reference validation set")
    ap.add_argument("--calibration", required=True, help="calibrate's --out folder (INT8 IR + calibration_report.json)")
    ap.add_argument("--weights", default=str(REFERENCE))
    ap.add_argument("--imgsz", default="256")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    from edgedet.api import build
    from edgedet.benchmarks.environment import environment

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cal = json.loads((Path(a.calibration) / "calibration_report.json").read_text())
    row = next(r for r in cal["artifacts"] if r["backend"] == "openvino")
    fp32_onnx, int8 = cal["fp32_onnx"], row["artifact"]
    build_args = ["--weights", a.weights, "--imgsz", a.imgsz]

    ort_ov = run(
        "ort_vs_openvino_f32",
        ["d0@onnxruntime", "d0@openvino:f32", *build_args, "--data", a.data, "--max-score-delta", "1e-3"],
        out,
    )
    f32_int8 = run(
        "f32_vs_int8_openvino",
        [f"{fp32_onnx}@openvino:f32", f"{int8}@openvino:f32", "--data", a.data],
        out,
    )
    fp32_ir = build("d0", "openvino", weights=a.weights, imgsz=int(a.imgsz)).path
    bad = planted(Path(fp32_ir), out / ".planted")
    wrong = run("planted_wrong_anchor", [str(fp32_ir), str(bad), "--data", a.data], out)
    shutil.rmtree(out / ".planted", ignore_errors=True)

    m = ort_ov["match"]
    checks = {
        "ort_vs_openvino_f32_all_matched": m["missing"] == m["extra"] == 0 and m["matched"] > 0,
        "ort_vs_openvino_f32_score_delta_max_le_1e-3": m["score_delta"]["max"] <= 1e-3,
        "f32_vs_int8_ap_difference_equals_gate": abs(f32_int8["accuracy"]["ap_drop"] - row["drop"]) <= 1e-4,
        "planted_wrong_anchor_exit_1": wrong["exit_code"] == 1,
    }
    summary = {
        "command": "python -m benchmarks.studies.compare_reference " + " ".join(sys.argv[1:] if argv is None else argv),
        "checks": checks,
        "ort_vs_openvino_f32": {"match": m, "accuracy": ort_ov["accuracy"]},
        "f32_vs_int8": {
            "compare_ap_drop": f32_int8["accuracy"]["ap_drop"],
            "calibrate_gate": {"fp32_AP": cal["fp32_AP"], "int8_AP": row["AP"], "drop": row["drop"]},
            "match": f32_int8["match"],
        },
        "planted_wrong_anchor": {"exit_code": wrong["exit_code"], "match": wrong["match"], "checks": wrong["checks"]},
        "environment": environment(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    return write_checks(out / "summary.json", summary)


if __name__ == "__main__":
    raise SystemExit(main())
