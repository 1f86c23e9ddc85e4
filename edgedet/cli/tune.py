"""`edgedet tune`: the most accurate deployment that meets a latency or throughput target on this machine (or the
fastest that reaches an AP), measured and resumable; the choice is exported with its evidence in the manifest."""

from __future__ import annotations

import json
import sys

from .common import positive, positive_float, probability

HELP = "find the most accurate deployment (model, size, backend, precision, options) meeting a target here"


def _sizes(value: str) -> list[int]:
    import argparse

    try:
        sizes = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of sizes, got {value!r}") from None
    if not sizes or any(s < 32 or s % 32 for s in sizes):
        raise argparse.ArgumentTypeError("sizes must be multiples of 32 (EfficientDet's largest stride is 128)")
    return sizes


def add_arguments(p):
    from edgedet.registry import BACKENDS

    from .common import names

    p.add_argument(
        "--model",
        required=True,
        help="comma list of NAME=WEIGHTS (d0=w0.pth,d1=w1.pth; NAME=coco: the published weights)",
    )
    p.add_argument("--data", required=True, help="COCO json of the validation set (AP of every candidate)")
    p.add_argument("--images", help="its image folder (default: images/ beside it)")
    p.add_argument(
        "--calib", help="calibration frames (folder, video, COCO json): adds INT8 candidates near the target"
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--latency-ms", type=positive_float, help="end-to-end latency p50 at batch 1, at most")
    g.add_argument("--min-ap", type=probability, help="the fastest deployment whose AP reaches this")
    g.add_argument("--fps", type=positive_float, help="frames per second per stream, with --streams streams at once")
    p.add_argument("--streams", type=positive, default=1, help="streams at once for --fps (default 1)")
    p.add_argument(
        "--imgsz",
        type=positive,
        help="the models' own input size (default: each model's); smaller multiples of 128 are searched too",
    )
    p.add_argument("--sizes", type=_sizes, help="input sizes to search instead, e.g. 512,384")
    p.add_argument(
        "--backends",
        help=f"comma list to search (default: every installed one of "
        f"{names(BACKENDS.values(), lambda b: not b.schemes)})",
    )
    p.add_argument("--device", help="search on this device only (default: the CPU, and a CUDA GPU when visible)")
    p.add_argument("--budget-min", type=positive_float, default=30.0, help="wall-clock budget in minutes (30)")
    p.add_argument(
        "--max-ap-drop",
        type=probability,
        default=0.01,
        help="a reduced precision (bf16, f16, INT8) may lose at most this AP against f32 (0.01)",
    )
    p.add_argument(
        "--subset",
        type=positive_float,
        default=0.25,
        help="fraction of the validation images the first AP round uses (0.25)",
    )
    p.add_argument("--iters", type=positive, default=30, help="end-to-end calls per candidate for its latency (30)")
    p.add_argument(
        "--exhaustive",
        action="store_true",
        help="measure full AP (and INT8 with --calib) for every candidate: the grid to check a choice against",
    )
    p.add_argument("--out", required=True, help="folder for the chosen artifact, tune.json, tune.txt and the plot")
    p.add_argument("--json", action="store_true", help="print only the JSON report")


def _target(a):
    from edgedet.benchmarks.tune import Target

    if a.latency_ms is not None:
        return Target("latency", a.latency_ms)
    if a.min_ap is not None:
        return Target("min_ap", a.min_ap)
    return Target("fps", a.fps, a.streams)


def run(a) -> int:
    from edgedet.benchmarks.tune import TuneRequest, tune
    from edgedet.benchmarks.tune_output import table
    from edgedet.benchmarks.tune_space import parse_models

    req = TuneRequest(
        models=parse_models(a.model),
        data=a.data,
        images=a.images,
        target=_target(a),
        out=a.out,
        calib=a.calib,
        imgsz=a.imgsz,
        sizes=a.sizes,
        backends=[b.strip() for b in a.backends.split(",") if b.strip()] if a.backends else None,
        device=a.device,
        budget_min=a.budget_min,
        max_ap_drop=a.max_ap_drop,
        subset=a.subset,
        iters=a.iters,
        exhaustive=a.exhaustive,
    )
    report = tune(req, log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(report, indent=2) if a.json else table(report))
    if report["interrupted"]:
        return 130
    return 0 if report["chosen"] else 1
