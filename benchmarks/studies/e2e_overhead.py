"""Detector end-to-end FPS vs the bare backend session on the same artifact, measured in one run.

    python -m benchmarks.studies.e2e_overhead --model d0 --iters 100 [--out benchmarks/results/e2e_overhead.json]

The bare session is the backend's own API fed one prepared input tensor (ONNX Runtime InferenceSession.run,
OpenVINO CompiledModel infer request): what a user gets with no pre/post-processing at all. The Detector
reads a real photo each iteration and does letterbox + inference + decode/NMS + mapping to original pixels.

Each row also says where the Detector's extra time goes: its stage times in the loop (median), the same
pre + post work timed alone, back to back with no inference in between (its code and data then stay in cache),
and the same work 3 ms after an inference (the backend's threads have stopped spinning; caches still hold its data).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from edgedet.api import build
from edgedet.benchmarks.environment import environment
from edgedet.benchmarks.images import sample_images
from edgedet.benchmarks.stats import summarize, time_calls
from edgedet.fileio import write_json_atomic
from edgedet.runtimes import Detector


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


def measure(
    model: str, backend: str, iters: int, warmup: int, images, postprocess: str, rounds: int = 10, **build_kw
) -> dict:
    path = build(model, backend, postprocess=postprocess, **build_kw).path
    det = Detector.load(path, backend=backend)
    x = det.preprocess([images[0]])[0].copy()
    bare = BARE[backend](path, x)
    i = {"n": 0}
    timings = []  # each call's Timing, kept whole: splitting it into stages inside the timed call would bill
    # the benchmark's own bookkeeping to the Detector

    def e2e():
        det(images[i["n"] % len(images)])
        i["n"] += 1
        timings.append(det.timing)

    # The Detector's host work alone (no inference between calls, so its code and data stay in this core's
    # caches): what pre + post cost when nothing else runs, against what they cost in the loop above.
    outputs = []
    for img in images:
        batch, (info,) = det.preprocess([img])
        outputs.append(({k: np.array(v) for k, v in det.infer(batch).items()}, info))

    def host_alone():
        n = i["n"] % len(images)
        det.preprocess([det._load(images[n], 0)])
        det.postprocess(outputs[n][0], 0, outputs[n][1], det.score_threshold)
        i["n"] += 1

    def host_after_pause(n_calls: int) -> list[float]:
        """The same host work 3 ms after an inference: the backend's threads have stopped spinning, but its data
        still fills this core's caches."""
        times = []
        for _ in range(n_calls):
            det.infer(x)
            time.sleep(0.003)
            t0 = time.perf_counter()
            host_alone()
            times.append((time.perf_counter() - t0) * 1e3)
        return times

    # Interleave short rounds so that slow drifts of the machine hit both sides alike; the ratio of each round's
    # medians is taken, and their median reported (robust to a round that a background burst slowed).
    bare_t, e2e_t, host_t, pause_t, ratios = [], [], [], [], []
    for _ in range(rounds):
        b_round = time_calls(bare, max(1, iters // rounds), warmup)
        first = len(timings)
        e_round = time_calls(e2e, max(1, iters // rounds), warmup)
        del timings[first : first + warmup]  # the stage times of the timed calls only, as e_round
        host_t += time_calls(host_alone, max(1, iters // rounds), warmup)
        pause_t += host_after_pause(max(1, iters // rounds))
        bare_t += b_round
        e2e_t += e_round
        ratios.append(statistics.median(b_round) / statistics.median(e_round))
    b, e = summarize(bare_t), summarize(e2e_t)
    in_loop = {k: round(statistics.median(getattr(t, k) for t in timings), 3) for k in ("pre", "infer", "post")}
    return {
        "model": model,
        "backend": backend,
        "postprocess": postprocess,
        "bare_ms": b,
        "detector_e2e_ms": e,
        "bare_fps": round(1000 / b["p50"], 2),
        "detector_fps": round(1000 / e["p50"], 2),
        "ratio_detector_over_bare_fps": round(b["p50"] / e["p50"], 3),
        "ratio_median_of_rounds": round(statistics.median(ratios), 3),
        "rounds": rounds,
        "detections_per_image": [len(det(img)) for img in images],
        "stages_ms_in_loop_p50": in_loop,
        "extra_ms_p50": round(e["p50"] - b["p50"], 3),
        "host_work_alone_ms_p50": round(statistics.median(host_t), 3),
        "host_work_3ms_after_inference_ms_p50": round(statistics.median(pause_t), 3),
    }


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
    rows = [
        measure(a.model, b, a.iters, a.warmup, images, pp, **build_kw)
        for b in a.backends.split(",")
        for pp in a.postprocess.split(",")
    ]
    for r in rows:
        print(
            f"{r['model']} {r['backend']:<12} {r['postprocess']:<5} bare {r['bare_ms']['p50']:7.2f} ms "
            f"({r['bare_fps']:.1f} FPS)  detector e2e {r['detector_e2e_ms']['p50']:7.2f} ms "
            f"({r['detector_fps']:.1f} FPS)  ratio {r['ratio_detector_over_bare_fps']:.3f} "
            f"(median of {r['rounds']} rounds {r['ratio_median_of_rounds']:.3f})"
        )
        st = r["stages_ms_in_loop_p50"]
        print(
            f"    extra {r['extra_ms_p50']:.2f} ms; in the loop: pre {st['pre']:.3f}  infer {st['infer']:.2f}  "
            f"post {st['post']:.3f} ms; the same pre + post alone: {r['host_work_alone_ms_p50']:.3f} ms, "
            f"3 ms after an inference: {r['host_work_3ms_after_inference_ms_p50']:.3f} ms"
        )
    if a.out:
        args = sys.argv[1:] if argv is None else argv
        write_json_atomic(
            a.out,
            {
                "command": "python -m benchmarks.studies.e2e_overhead " + " ".join(args),
                "environment": environment(),
                "rows": rows,
                "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
