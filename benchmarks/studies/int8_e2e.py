"""Where an INT8 artifact's end-to-end time goes, against float, in ONE interleaved run (issue 26).

    python -m benchmarks.studies.int8_e2e --images /tmp/ref/images \
        --artifact "fp32=<cache>/d0.xml" --artifact "fp32 f32=<cache>/d0.xml@openvino:f32" \
        --artifact "ort fp32=<cache>/d0.onnx" --artifact "int8=/tmp/int8/d0_int8_openvino.xml" ... \
        --out benchmarks/results/int8_e2e/int8_e2e.json

Each artifact (a deployment spelling, benchmarks/deployment.py) is measured four ways in the same rounds:
- e2e: the Detector on real images (letterbox + inference + decode/NMS), with its stage times;
- bare: the runner's call on one prepared input (no pre/post-processing);
- counters: OpenVINO's own per-layer counters (PERF_COUNT) on a second compile of the same model with the same
  precision hint: the network alone, and the wall time of that counted call. `bare - counters` is the time an
  inference spends outside the layers the counters see;
- per layer type, from the counters.
Rounds are short and interleaved, so a drift of a shared machine hits every artifact alike; each ratio is the median
of the per-round ratios against the first artifact (the reference), robust to a round a background burst slowed.
Each way is also timed in process CPU time (`*_cpu`): on a machine other processes load, the CPU time a call costs
moves far less than its wall time (with --threads 1 it is the inference's own work, spin-waits aside).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path


def counters_model(det):
    """A PERF_COUNT compile of the Detector's OpenVINO model with its precision hint and threads; None for others."""
    compiled = getattr(det.runner, "compiled", None)
    if compiled is None:
        return None
    import openvino as ov

    config = {"PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": True}
    for key in ("INFERENCE_PRECISION_HINT", "INFERENCE_NUM_THREADS"):
        config[key] = compiled.get_property(key)
    core = ov.Core()
    return core.compile_model(core.read_model(str(det.runner.path)), det.runner.device, config).create_infer_request()


def counted(request, x) -> tuple[float, float, dict]:
    t0 = time.perf_counter()
    request.infer({0: x})
    wall = (time.perf_counter() - t0) * 1e3
    layers: dict = defaultdict(float)
    for info in request.get_profiling_info():
        if info.status == info.Status.EXECUTED:
            layers[info.node_type] += info.real_time.total_seconds() * 1e3
    return wall, sum(layers.values()), layers


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifact", action="append", required=True, help="LABEL=DEPLOYMENT (the first is the reference)")
    ap.add_argument("--images", required=True)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--calls", type=int, default=8, help="calls per artifact per round and per way")
    ap.add_argument("--threads", type=int, help="inference threads of every artifact (default: the backend's)")
    ap.add_argument("--finding", default="", help="the cause, as established from this run (recorded with it)")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    from edgedet.benchmarks.deployment import Deployment
    from edgedet.benchmarks.environment import environment
    from edgedet.fileio import write_json_atomic
    from edgedet.preprocess import list_images, read_image

    frames = [read_image(p) for p in list_images(a.images)[:16]]
    dets, reqs, inputs = {}, {}, {}
    for item in a.artifact:
        label, _, spelling = item.partition("=")
        dep = Deployment.parse(spelling)
        if a.threads and dep.backend is not None:
            dep = Deployment(dep.source, dep.backend, dep.precision, (*dep.options, ("threads", a.threads)))
        elif a.threads:
            from edgedet.registry import backend_for

            dep = Deployment(dep.source, backend_for(dep.source), None, (("threads", a.threads),))
        det = dep.load(0.25)
        dets[label] = det
        reqs[label] = counters_model(det)
        inputs[label] = det.preprocess([frames[0]])[0].copy()
    ways = ("e2e", "infer", "bare", "counted_wall", "counters", "e2e_cpu", "bare_cpu")
    t: dict = {k: {w: [] for w in ways} for k in dets}
    layer_times: dict = {k: defaultdict(list) for k in dets}
    per_round: dict = {k: {w: [] for w in ways} for k in dets}
    for det in dets.values():  # warm-up
        for f in frames[:3]:
            det(f)
    for _ in range(a.rounds):
        for label, det in dets.items():
            got = {w: [] for w in ways}
            det(frames[0])
            for i in range(a.calls):
                c0, t0 = time.process_time(), time.perf_counter()
                det(frames[i % len(frames)])
                got["e2e"].append((time.perf_counter() - t0) * 1e3)
                got["e2e_cpu"].append((time.process_time() - c0) * 1e3)
                got["infer"].append(det.timing.infer)
            x = {det.input_name: inputs[label]}
            for _ in range(a.calls):
                c0, t0 = time.process_time(), time.perf_counter()
                det.runner(x)
                got["bare"].append((time.perf_counter() - t0) * 1e3)
                got["bare_cpu"].append((time.process_time() - c0) * 1e3)
            if reqs[label] is not None:
                for _ in range(a.calls):
                    wall, total, layers = counted(reqs[label], inputs[label])
                    got["counted_wall"].append(wall)
                    got["counters"].append(total)
                    for k, v in layers.items():
                        layer_times[label][k].append(v)
            for w, v in got.items():
                if v:
                    t[label][w] += v
                    per_round[label][w].append(statistics.median(v))
    ref = next(iter(dets))
    rows = []
    for label, det in dets.items():
        med = {w: round(statistics.median(v), 3) for w, v in t[label].items() if v}
        speedup = {
            w: round(statistics.median(r / m for r, m in zip(per_round[ref][w], per_round[label][w])), 3)
            for w in ways
            if per_round[label][w] and per_round[ref][w]
        }
        rows.append(
            {
                "label": label,
                "deployment": dict(item.partition("=")[::2] for item in a.artifact)[label],
                "executed": det.runner.execution_precision,
                "median_ms": med,
                "outside_layers_ms": round(med["bare"] - med["counters"], 3) if "counters" in med else None,
                "detector_over_bare_ms": round(med["e2e"] - med["bare"], 3),
                f"speedup_vs_{ref}": speedup,
                "by_layer_type_ms": {
                    k: round(statistics.median(v), 3)
                    for k, v in sorted(layer_times[label].items(), key=lambda kv: -statistics.median(kv[1]))
                },
            }
        )
    for det in dets.values():
        det.close()
    floats = [r for r in rows if "int8" not in r["executed"]]
    best_float = min(floats, key=lambda r: r["median_ms"]["e2e"]) if floats else None
    for r in rows:
        line = (
            f"{r['label']:<22} {r['executed']:<30} e2e {r['median_ms']['e2e']:7.2f}  infer {r['median_ms']['infer']:7.2f}"
            f"  bare {r['median_ms']['bare']:7.2f}"
        )
        if r["outside_layers_ms"] is not None:
            line += f"  counters {r['median_ms']['counters']:7.2f}  outside layers {r['outside_layers_ms']:6.2f}"
        s = r[f"speedup_vs_{ref}"]
        line += f"  cpu: e2e {r['median_ms']['e2e_cpu']:7.2f} bare {r['median_ms']['bare_cpu']:7.2f}"
        line += f"  | vs {ref}: e2e {s['e2e']:.2f}x bare {s['bare']:.2f}x cpu {s['e2e_cpu']:.2f}x" + (
            f" counters {s['counters']:.2f}x" if "counters" in s else ""
        )
        if best_float is not None:
            line += f" | vs best float ({best_float['label']}) e2e {best_float['median_ms']['e2e'] / r['median_ms']['e2e']:.2f}x"
        print(line)
    if a.out:
        write_json_atomic(
            Path(a.out),
            {
                "command": "python -m benchmarks.studies.int8_e2e " + " ".join(sys.argv[1:] if argv is None else argv),
                "finding": a.finding,
                "rounds": a.rounds,
                "calls": a.calls,
                "reference": ref,
                "best_float": best_float["label"] if best_float else None,
                "rows": rows,
                "environment": environment(),
                "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
