"""`edgedet calibrate`: INT8 artifacts from one calibration set, gated on mAP."""

from __future__ import annotations

import contextlib
import json
import os
import sys

from edgedet.converters.int8.strategies import STRATEGIES

from .common import nonnegative, positive

HELP = "INT8 artifacts for OpenVINO / ONNX Runtime / TensorRT from one calibration set, gated on mAP"


def add_arguments(p):
    p.add_argument("--model", required=True, help="model name or FP32 .onnx artifact")
    p.add_argument("--weights")
    p.add_argument("--imgsz", type=positive)
    p.add_argument("--calib", required=True, help="image folder, video, or COCO json")
    p.add_argument("--num", type=positive, default=300)
    p.add_argument("--every", type=positive, help="video: take every k-th frame")
    p.add_argument("--method", choices=["minmax", "entropy", "percentile"], default="percentile")
    p.add_argument("--backend", default="openvino,onnxruntime", help=f"comma list of {', '.join(STRATEGIES)}")
    p.add_argument("--val", help="COCO json for the accuracy gate")
    p.add_argument("--images", help="validation image folder")
    p.add_argument("--max-map-drop", type=float, default=0.01)
    p.add_argument(
        "--speed-iters",
        type=nonnegative,
        default=30,
        help="end-to-end calls per artifact timing INT8 against FP32 in the same run (0: skip)",
    )
    p.add_argument(
        "--ranking-subset",
        type=positive,
        default=100,
        help="validation images NNCF's accuracy control ranks layers on (OpenVINO; fewer is faster)",
    )
    p.add_argument(
        "--seven-bit-weights",
        choices=["auto", "on", "off"],
        default="auto",
        help="OpenVINO/ONNX Runtime forms: 7-bit weights, which avoid the saturation of int8 dot products "
        "on x86 CPUs without VNNI (auto: on for x86 where /proc/cpuinfo shows no VNNI or AMX; "
        "off: NNCF's default, 7 bits on the first layer only)",
    )
    p.add_argument(
        "--no-float-prior",
        dest="float_prior",
        action="store_false",
        help="quantize every layer first (OpenVINO keeps the heads' depthwise convs float by default)",
    )
    p.add_argument("--out", required=True)
    p.add_argument("--json", action="store_true")


def run(a) -> int:
    from edgedet.converters.int8.pipeline import CalibrateRequest, calibrate
    from edgedet.registry import parse_backends

    backends = tuple(b.name for b in parse_backends(a.backend))
    req = CalibrateRequest(
        model=a.model,
        calib=a.calib,
        out=a.out,
        weights=a.weights,
        imgsz=a.imgsz,
        num=a.num,
        every=a.every,
        method=a.method,
        backends=backends,
        val=a.val,
        val_images=a.images,
        max_map_drop=a.max_map_drop,
        speed_iters=a.speed_iters,
        ranking_subset=a.ranking_subset,
        seven_bit_weights=a.seven_bit_weights,
        float_prior=a.float_prior,
    )
    if a.json:
        with stdout_to_stderr():  # NNCF logs through a handler on stdout, OpenVINO and ORT print: only JSON goes out
            report = calibrate(req, log=lambda m: print(m, file=sys.stderr))
        print(json.dumps(report, indent=2))
    else:
        report = calibrate(req, log=print)
    failed = [r["backend"] for r in report["artifacts"] if r["passed"] is False]
    return 1 if failed else 0


@contextlib.contextmanager
def stdout_to_stderr():
    """Everything written to stdout meanwhile goes to stderr: Python's sys.stdout, logging handlers that hold the
    original stream (NNCF's), and native libraries writing to file descriptor 1."""
    sys.stdout.flush()
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no real descriptor (an embedding, a test's capture)
        fd = None
    saved = os.dup(fd) if fd is not None else None
    if fd is not None:
        os.dup2(sys.stderr.fileno(), fd)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        if saved is not None:
            os.dup2(saved, fd)
            os.close(saved)
