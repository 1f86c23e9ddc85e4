"""Cold start: from Detector.load to the first detection, in fresh processes, first and second start.

    python -m benchmarks.studies.cold_start --model d0 --out benchmarks/results/cold_start

The first start on a machine compiles (OpenVINO) or optimises (ONNX Runtime) the model; OpenVINO then keeps
the compiled blob in its model cache inside the edgedet cache, so the second start loads it. Each start is a new
Python process; the time excludes Python imports and artifact export (done once before)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = """
import json, sys, time
import numpy as np
from edgedet.runtimes import Detector
img = np.full((480, 640, 3), 127, np.uint8)
t0 = time.perf_counter()
det = Detector.load(sys.argv[1])
det(img)
print(json.dumps({"cold_ms": (time.perf_counter() - t0) * 1e3}))
"""


def starts(path: str, n: int, env: dict) -> list[float]:
    out = []
    for _ in range(n):
        r = subprocess.run([sys.executable, "-c", CHILD, path], capture_output=True, text=True, env=env, check=True)
        out.append(round(json.loads(r.stdout.strip().splitlines()[-1])["cold_ms"], 1))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="d0")
    ap.add_argument("--backends", default="openvino,onnxruntime")
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    from edgedet.api import build
    from edgedet.benchmarks.environment import environment

    cache = tempfile.mkdtemp(prefix="edgedet-cold-")  # a fresh cache: the first start really is the first
    env = {**os.environ, "EDGEDET_CACHE": cache}
    os.environ["EDGEDET_CACHE"] = cache
    rows = []
    for backend in a.backends.split(","):
        path = str(build(a.model, backend).path)
        times = starts(path, a.starts, env)
        rows.append(
            {
                "model": a.model,
                "backend": backend,
                "first_start_ms": times[0],
                "later_starts_ms": times[1:],
                "second_start_ms": times[1] if len(times) > 1 else None,
            }
        )
        print(f"{a.model} {backend:<12} first start {times[0]:8.1f} ms   later starts {times[1:]} ms")
    if a.out:
        from pathlib import Path

        from edgedet.fileio import write_json_atomic

        write_json_atomic(
            Path(a.out) / "cold_start.json",
            {
                "command": "python -m benchmarks.studies.cold_start "
                + " ".join(sys.argv[1:] if argv is None else argv),
                "definition": "fresh process; ms from Detector.load to the first detection (imports excluded)",
                "rows": rows,
                "environment": environment(),
                "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
