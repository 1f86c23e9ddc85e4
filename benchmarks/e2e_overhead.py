"""Detector end-to-end FPS vs the bare backend session on the same artifact, measured in one run.

    python -m edgedet.benchmarks.e2e_overhead --model d0 --iters 100 [--out benchmarks/results/e2e_overhead.json]

The bare session is the backend's own API fed one prepared input tensor (ONNX Runtime InferenceSession.run,
OpenVINO CompiledModel infer request): what a user gets with no pre/post-processing at all. The Detector
reads a real photo each iteration and does letterbox + inference + decode/NMS + mapping to original pixels.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time


from edgedet.api import build
from edgedet.fileio import write_json_atomic
from edgedet.runtimes import Detector

from .environment import environment
from .images import sample_images
from .stats import summarize, time_calls


def bare_onnxruntime(path, x):
    import onnxruntime as ort
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda: sess.run(None, {name: x})


def bare_openvino(path, x):
    import openvino as ov
    compiled = ov.Core().compile_model(str(path), "CPU", {"PERFORMANCE_HINT": "LATENCY"})
    req = compiled.create_infer_request()
    return lambda: req.infer({0: x})


BARE = {"onnxruntime": bare_onnxruntime, "openvino": bare_openvino}


def measure(model: str, backend: str, iters: int, warmup: int, images, postprocess: str, rounds: int = 10,
            **build_kw) -> dict:
    path = build(model, backend, postprocess=postprocess, **build_kw).path
    det = Detector.load(path, backend=backend)
    x = det.preprocess([images[0]])[0].copy()
    bare = BARE[backend](path, x)
    i = {"n": 0}

    def e2e():
        det(images[i["n"] % len(images)])
        i["n"] += 1

    # Interleave short rounds so that slow drifts of the machine hit both sides alike; the ratio of each round's
    # medians is taken, and their median reported (robust to a round that a background burst slowed).
    bare_t, e2e_t, ratios = [], [], []
    for _ in range(rounds):
        b_round = time_calls(bare, max(1, iters // rounds), warmup)
        e_round = time_calls(e2e, max(1, iters // rounds), warmup)
        bare_t += b_round
        e2e_t += e_round
        ratios.append(statistics.median(b_round) / statistics.median(e_round))
    b, e = summarize(bare_t), summarize(e2e_t)
    return {"model": model, "backend": backend, "postprocess": postprocess, "bare_ms": b, "detector_e2e_ms": e,
            "bare_fps": round(1000 / b["p50"], 2), "detector_fps": round(1000 / e["p50"], 2),
            "ratio_detector_over_bare_fps": round(b["p50"] / e["p50"], 3),
            "ratio_median_of_rounds": round(statistics.median(ratios), 3), "rounds": rounds,
            "stages_ms_last_call": {"pre": round(det.timing.pre, 3), "infer": round(det.timing.infer, 3),
                                    "post": round(det.timing.post, 3)}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="d0")
    ap.add_argument("--backends", default="openvino,onnxruntime")
    ap.add_argument("--postprocess", default="host,graph")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--weights", help="real weights give real detections, so a real NMS load")
    ap.add_argument("--imgsz", type=int)
    ap.add_argument("--data", help="image folder to time on (default: scikit-image photos)")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    images = sample_images(a.data)
    build_kw = {k: v for k, v in (("weights", a.weights), ("imgsz", a.imgsz)) if v}
    rows = [measure(a.model, b, a.iters, a.warmup, images, pp, **build_kw)
            for b in a.backends.split(",") for pp in a.postprocess.split(",")]
    for r in rows:
        print(f"{r['model']} {r['backend']:<12} {r['postprocess']:<5} bare {r['bare_ms']['p50']:7.2f} ms "
              f"({r['bare_fps']:.1f} FPS)  detector e2e {r['detector_e2e_ms']['p50']:7.2f} ms "
              f"({r['detector_fps']:.1f} FPS)  ratio {r['ratio_detector_over_bare_fps']:.3f} "
              f"(median of {r['rounds']} rounds {r['ratio_median_of_rounds']:.3f})")
    if a.out:
        args = sys.argv[1:] if argv is None else argv
        write_json_atomic(a.out, {"command": "python -m edgedet.benchmarks.e2e_overhead " + " ".join(args),
                                  "environment": environment(), "rows": rows,
                                  "date": time.strftime("%Y-%m-%d %H:%M:%S")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
