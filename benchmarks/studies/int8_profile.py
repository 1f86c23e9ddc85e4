"""Where INT8 time goes on this CPU: OpenVINO's per-layer performance counters for an FP32 and an INT8 IR, same run.

    python -m benchmarks.studies.int8_profile --fp32 d0.xml --int8 d0_int8_openvino.xml --out results/int8_profile

Both models are compiled with PERF_COUNT on the LATENCY hint and run on the same letterboxed input; per layer type
and kernel (OpenVINO's exec_type, e.g. jit_avx2_FP32 vs jit_avx2_I8 / ref_any), the median time per inference is
summed, so the table says which layers got faster in INT8, which got slower, and what the quantization added
(FakeQuantize, Reorder, Convert). The CPU's ISA flags are recorded: without VNNI (AVX-512 VNNI or AVX-VNNI) the
int8 dot products run as AVX2 multiply-add sequences, which is where the expected INT8 speed-up goes."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path


def profile(path: str, iters: int) -> dict:
    """{(layer type, kernel): median ms per inference} and the median total, from OpenVINO's counters."""
    import numpy as np
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(path), "CPU", {"PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": True})
    req = compiled.create_infer_request()
    inp = compiled.inputs[0]
    dtype = np.uint8 if inp.get_element_type() == ov.Type.u8 else np.float32
    x = np.random.default_rng(0).random(list(inp.get_shape())).astype(dtype)
    for _ in range(3):
        req.infer({0: x})
    per_key: dict = defaultdict(list)
    totals, walls = [], []
    for _ in range(iters):
        t0 = time.perf_counter()
        req.infer({0: x})
        walls.append((time.perf_counter() - t0) * 1e3)
        sums: dict = defaultdict(float)
        for info in req.get_profiling_info():
            if info.status == info.Status.EXECUTED:
                sums[(info.node_type, info.exec_type)] += info.real_time.total_seconds() * 1e3
        for k, v in sums.items():
            per_key[k].append(v)
        totals.append(sum(sums.values()))
    return {
        "layers": {k: statistics.median(v) for k, v in per_key.items()},
        "total_ms": statistics.median(totals),
        "wall_ms": statistics.median(walls),
        "inference_precision": str(compiled.get_property("INFERENCE_PRECISION_HINT")),
    }


def by_type(layers: dict) -> dict:
    out: dict = defaultdict(float)
    for (node_type, _), ms in layers.items():
        out[node_type] += ms
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fp32", required=True)
    ap.add_argument("--int8", required=True)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    from edgedet.benchmarks.environment import environment

    fp32, int8 = profile(a.fp32, a.iters), profile(a.int8, a.iters)
    f_types, i_types = by_type(fp32["layers"]), by_type(int8["layers"])
    types = sorted(set(f_types) | set(i_types), key=lambda t: -(i_types.get(t, 0) + f_types.get(t, 0)))
    rows = [
        {
            "layer_type": t,
            "fp32_ms": round(f_types.get(t, 0.0), 3),
            "int8_ms": round(i_types.get(t, 0.0), 3),
            "int8_minus_fp32_ms": round(i_types.get(t, 0.0) - f_types.get(t, 0.0), 3),
        }
        for t in types
    ]
    kernels = sorted(
        (
            {"layer_type": k[0], "kernel": k[1], "model": name, "ms": round(v, 3)}
            for name, prof in (("fp32", fp32), ("int8", int8))
            for k, v in prof["layers"].items()
        ),
        key=lambda r: -r["ms"],
    )
    print(f"{'layer type':<22}{'fp32 ms':>10}{'int8 ms':>10}{'int8-fp32':>11}")
    for r in rows[: a.top]:
        print(f"{r['layer_type']:<22}{r['fp32_ms']:>10.2f}{r['int8_ms']:>10.2f}{r['int8_minus_fp32_ms']:>+11.2f}")
    print(
        f"{'total (counters)':<22}{fp32['total_ms']:>10.2f}{int8['total_ms']:>10.2f}"
        f"{int8['total_ms'] - fp32['total_ms']:>+11.2f}"
    )
    print(
        f"{'wall per inference':<22}{fp32['wall_ms']:>10.2f}{int8['wall_ms']:>10.2f}   "
        f"INT8 speed-up {fp32['wall_ms'] / int8['wall_ms']:.2f}x"
    )
    print(
        "slowest kernels:",
        "; ".join(f"{k['model']} {k['layer_type']} {k['kernel']} {k['ms']:.2f} ms" for k in kernels[:6]),
    )
    env = environment()
    if a.out:
        from edgedet.fileio import write_json_atomic

        write_json_atomic(
            Path(a.out) / "int8_profile.json",
            {
                "command": "python -m benchmarks.studies.int8_profile "
                + " ".join(sys.argv[1:] if argv is None else argv),
                "fp32": {
                    "total_ms": round(fp32["total_ms"], 3),
                    "wall_ms": round(fp32["wall_ms"], 3),
                    "inference_precision": fp32["inference_precision"],
                },
                "int8": {
                    "total_ms": round(int8["total_ms"], 3),
                    "wall_ms": round(int8["wall_ms"], 3),
                    "inference_precision": int8["inference_precision"],
                },
                "speedup_wall": round(fp32["wall_ms"] / int8["wall_ms"], 3),
                "by_layer_type": rows,
                "kernels": kernels[:40],
                "environment": env,
                "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
