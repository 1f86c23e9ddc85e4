"""Is the measured default backend the fastest here? Resolve it on a fresh cache, then time every candidate
again, longer, in the same run, and compare.

    python -m benchmarks.studies.default_backend --model d0 --out benchmarks/results/default_backend_d0
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="d0")
    ap.add_argument("--weights")
    ap.add_argument("--imgsz", type=int)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    os.environ.setdefault("EDGEDET_CACHE", tempfile.mkdtemp(prefix="edgedet-default-"))
    from edgedet.api import _probe_image, build, choose_backend
    from edgedet.auto_backend import CALLS, candidates
    from edgedet.benchmarks.environment import environment
    from edgedet.runtimes import Detector

    kw = {k: v for k, v in (("weights", a.weights), ("imgsz", a.imgsz)) if v}
    t0 = time.perf_counter()
    choice = choose_backend(a.model, **kw)
    resolve_s = time.perf_counter() - t0
    image = _probe_image()
    dets = {
        s.name: Detector.load(build(a.model, s, **kw).path, backend=s, **s.options_for("latency")) for s in candidates()
    }
    times = {n: [] for n in dets}
    for det in dets.values():
        det(image)
    for _ in range(a.rounds):
        for name, det in dets.items():
            for _ in range(CALLS):
                t = time.perf_counter()
                det(image)
                times[name].append((time.perf_counter() - t) * 1e3)
    medians = {n: round(float(np.median(v)), 2) for n, v in times.items()}
    fastest = min(medians, key=medians.get)
    ratio = medians[choice.backend.name] / medians[fastest]
    res = {
        "model": a.model,
        **kw,
        "chosen": choice.backend.name,
        "reason": choice.reason,
        "resolve_seconds": round(resolve_s, 1),
        "check_medians_ms": medians,
        "fastest_in_check": fastest,
        "chosen_over_fastest": round(ratio, 3),
        "within_5_percent": ratio <= 1.05,
        "command": "python -m benchmarks.studies.default_backend " + " ".join(sys.argv[1:] if argv is None else argv),
        "environment": environment(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print(
        f"{a.model}: default -> {choice.backend.name} ({choice.reason}); check: "
        + ", ".join(f"{n} {m} ms" for n, m in medians.items())
        + f"; chosen/fastest {ratio:.3f}"
    )
    if a.out:
        from edgedet.fileio import write_json_atomic

        write_json_atomic(Path(a.out) / "default_backend.json", res)
    return 0 if ratio <= 1.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
