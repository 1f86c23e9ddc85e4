"""`edgedet bench`: latency, FPS and FPS/FLOP of models on backends, with the effdet baseline in the same run."""

from __future__ import annotations

import json
import sys

from edgedet.errors import InputError
from edgedet.registry import BACKENDS, build_precisions

from .common import models, names, positive, probability

HELP = "benchmark latency, FPS and FPS/FLOP of models on backends"


def add_arguments(p):
    p.add_argument("--model", type=models, default=[], help="comma list, e.g. d0,d1,d2 (or only --artifact)")
    p.add_argument(
        "--backend",
        default="auto",
        help=f"comma list of {names(BACKENDS.values(), lambda b: not b.schemes)}, or auto (the "
        "backend measured fastest here for the first model)",
    )
    p.add_argument("--precision", choices=[*build_precisions(), "int8"], default="fp32")
    p.add_argument("--batch", type=positive, default=1, help="batch of the throughput measurement")
    p.add_argument("--imgsz", type=positive)
    p.add_argument("--iters", type=positive, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--mode", choices=["latency", "throughput"], default="latency")
    p.add_argument(
        "--data",
        help="image folder for end-to-end timing, or a COCO json: timing on its images and "
        "AP/AP50 of every row on it (the same evaluation as edgedet eval)",
    )
    p.add_argument(
        "--max-ap-drop",
        type=float,
        default=0.01,
        help="with a COCO json as --data: rows that execute below f32 (OpenVINO bf16/f16, fp16) are evaluated in f32 "
        "too; an AP drop above this fails that precision, and the default never runs it again here",
    )
    p.add_argument("--weights", help="checkpoint to benchmark (default: random init; timing only)")
    p.add_argument("--conf", type=probability, default=0.25, help="deploy score threshold used end-to-end")
    p.add_argument("--device", help="cpu / cuda / cuda:N / gpu")
    p.add_argument("--no-baseline", action="store_true", help="skip the effdet eager baseline")
    p.add_argument(
        "--artifact",
        default="",
        help="comma list of existing artifacts to time in the same run (e.g. INT8 ones from 'edgedet calibrate')",
    )
    p.add_argument("--out", help="folder for bench.json, bench.csv, bench.txt and fps_vs_flops.png")
    p.add_argument("--json", action="store_true")


def _backends(a) -> list:
    """Parse --backend once; 'auto' resolves to the measured default for the first model, said with why."""
    from edgedet.api import choose_backend
    from edgedet.registry import parse_backends

    names = [n.strip() for n in a.backend.split(",") if n.strip()]
    specs = []
    for name in names:
        if name.lower() == "auto":
            build = {k: v for k, v in (("weights", a.weights), ("imgsz", a.imgsz)) if v}
            choice = choose_backend(a.model[0], **build)
            print(f"backend auto -> {choice.backend.name} ({choice.reason})", file=sys.stderr)
            specs.append(choice.backend)
        else:
            specs += parse_backends(name)
    return list({s.name: s for s in specs}.values())


def run(a) -> int:
    from edgedet.benchmarks.harness import BenchConfig, run_bench
    from edgedet.benchmarks.report import table, write_outputs
    from edgedet.progress import progress

    if a.precision == "int8":
        raise InputError("INT8 artifacts come from 'edgedet calibrate'; time them with --artifact PATH[,PATH]")
    artifacts = [s.strip() for s in a.artifact.split(",") if s.strip()]
    if not a.model and not artifacts:
        raise InputError("give --model NAMES and/or --artifact PATHS")
    backends = _backends(a) if a.model else []
    cfg = BenchConfig(
        models=a.model,
        backends=backends,
        precision=a.precision,
        batch=a.batch,
        imgsz=a.imgsz,
        iters=a.iters,
        warmup=a.warmup,
        mode=a.mode,
        data=a.data,
        weights=a.weights,
        conf=a.conf,
        device=a.device,
        baseline=not a.no_baseline,
        artifacts=artifacts,
        max_ap_drop=a.max_ap_drop,
    )

    def on_row(r):
        if not a.json:
            print(
                f"  {r['model']:>5} {r['backend']:<24} e2e p50 {r['e2e_ms']['p50']:8.2f} ms  ({r['fps_b1']:.1f} FPS)",
                file=sys.stderr,
            )

    report = run_bench(cfg, on_row=on_row, progress=lambda jobs: progress(jobs, desc="bench"))
    if a.out:
        report["outputs"] = write_outputs(report, a.out)
    print(json.dumps(report, indent=2) if a.json else table(report))
    if a.out and not a.json:
        print(f"wrote {', '.join(report['outputs'].values())}")
    return 130 if report["interrupted"] else 0
