"""`edgedet tune` checked against the exhaustive grid of the same space, on the reference model (issue 26).

    python -m benchmarks.studies.tune_vs_grid --data /tmp/ref/val.json --calib /tmp/calib/images \
        --out benchmarks/results/tune_reference

1. The grid: `edgedet tune --exhaustive` (full AP, and INT8 with --calib, for every candidate), in its own cache.
2. A latency target between two candidates of the grid's Pareto front: the midpoint of the widest latency gap
   between neighbours on the front, so the more accurate neighbour misses it and the faster one meets it.
3. `edgedet tune` with that target, in a fresh cache (its own measurements), timed; then the same command again,
   timed: it finishes from the cache.
4. The grid again, in tune's cache: the same space, every candidate's full AP (and INT8), on the latencies tune
   measured, so the check below is of the search itself (successive halving on a subset AP), free of run-to-run noise.
5. Checks: the tuned choice is a point of the Pareto front of the grid on the same measurements, and of the
   independent grid of step 1 (the second needs a quiet machine: latencies on a shared one move between runs by more
   than the gaps between candidates); `edgedet bench --data` on the exported artifact reproduces its AP to 1e-4 and
   its latency within the spread of tune's rounds; the second tune run takes under a tenth of the first's time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from . import write_checks

REFERENCE = Path(__file__).resolve().parents[2] / "tests" / "assets" / "reference_d0_shapes_fp16.pth"


def edgedet(args: list[str], cache: Path, log: Path) -> tuple[int, float, str]:
    """Run the edgedet CLI in a fresh process with its own cache (what a user runs); wall seconds and stdout."""
    env = {**os.environ, "EDGEDET_CACHE": str(cache), "CI": "true"}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "edgedet", *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    own = [line for line in p.stderr.splitlines() if line.startswith(("tune:", "  ", "edgedet"))]  # not NNCF's
    with open(log, "a") as f:
        f.write(f"$ EDGEDET_CACHE={cache} edgedet {' '.join(args)}  (exit {p.returncode}, {wall:.1f} s)\n")
        f.write("\n".join(own) + "\n\n")
    return p.returncode, wall, p.stdout


def target_between(grid: dict) -> tuple[float, dict, dict]:
    """The midpoint of the widest relative latency gap between neighbours on the grid's front."""
    front = [r for r in grid["points"] if r["on_front"]]
    front.sort(key=lambda r: r["p50_ms"])
    if len(front) < 2:
        raise SystemExit("the grid's front has fewer than two points: no target between two of them")
    fast, slow = max(zip(front, front[1:]), key=lambda pair: pair[1]["p50_ms"] / pair[0]["p50_ms"])
    return round((fast["p50_ms"] + slow["p50_ms"]) / 2, 2), fast, slow


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--calib", help="calibration frames: INT8 candidates in the grid and near the target")
    ap.add_argument("--weights", default=str(REFERENCE))
    ap.add_argument("--imgsz", default="256")
    ap.add_argument("--backends", help="restrict the space (default: every installed backend)")
    ap.add_argument("--iters", default="30")
    ap.add_argument("--work", default="/tmp/tune_vs_grid", help="caches and tuned artifacts")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    from edgedet.benchmarks.environment import environment

    out, work = Path(a.out), Path(a.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    log = out / "commands.log"
    log.write_text("")
    space = ["--model", f"d0={a.weights}", "--imgsz", a.imgsz, "--data", a.data, "--iters", a.iters]
    space += ["--backends", a.backends] if a.backends else []
    space += ["--calib", a.calib] if a.calib else []

    grid_args = ["tune", *space, "--latency-ms", "100000", "--exhaustive", "--budget-min", "120"]
    grid_args += ["--out", str(work / "grid"), "--json"]
    rc, grid_s, text = edgedet(grid_args, work / "cache_grid", log)
    grid = json.loads(text)
    target, fast, slow = target_between(grid)

    tune_args = ["tune", *space, "--latency-ms", str(target), "--out", str(work / "tuned"), "--json"]
    rc1, first_s, text1 = edgedet(tune_args, work / "cache_tune", log)
    first = json.loads(text1)
    rc2, second_s, text2 = edgedet(tune_args, work / "cache_tune", log)
    second = json.loads(text2)
    chosen = first["chosen"]
    grid_front = {r["key"] for r in grid["points"] if r["on_front"]}
    same_args = [*grid_args[: grid_args.index("--out")], "--out", str(work / "grid_same"), "--json"]
    _, same_s, same_text = edgedet(same_args, work / "cache_tune", log)
    same = json.loads(same_text)
    same_front = {r["key"] for r in same["points"] if r["on_front"]}

    art = chosen["exported"]
    bench_args = ["bench", "--artifact", art, "--data", a.data, "--no-baseline", "--iters", "60", "--json"]
    _, _, btext = edgedet(bench_args, work / "cache_tune", log)
    row = json.loads(btext)["rows"][0]
    rounds = chosen["speed"]["round_p50"]
    spread = (min(rounds), max(rounds))
    bench_p50 = row["e2e_ms"]["p50"]
    checks = {
        "tuned_choice_on_front_of_grid_on_same_measurements": _key(chosen) in same_front,
        "tuned_choice_on_front_of_independent_grid": _key(chosen) in grid_front,
        "tuned_choice_meets_target": chosen["speed"]["p50"] <= target,
        "bench_reproduces_ap_1e-4": abs(row["AP"] - chosen["AP"]) <= 1e-4,
        "bench_latency_within_tune_round_spread": spread[0] <= bench_p50 <= spread[1],
        "bench_latency_within_bench_p10_p90_of_tune_p50": row["e2e_ms"]["min"]
        <= chosen["speed"]["p50"]
        <= row["e2e_ms"]["p90"],
        "second_run_under_a_tenth": second_s < first_s / 10,
    }
    summary = {
        "command": "python -m benchmarks.studies.tune_vs_grid " + " ".join(sys.argv[1:] if argv is None else argv),
        "grid": {
            "command": "edgedet " + " ".join(grid_args),
            "seconds": round(grid_s, 1),
            "points": [_brief(r) for r in grid["points"]],
            "front": grid["front"],
            "skipped": grid["skipped"],
        },
        "grid_on_tune_measurements": {
            "command": f"EDGEDET_CACHE={work / 'cache_tune'} edgedet " + " ".join(same_args),
            "seconds": round(same_s, 1),
            "points": [_brief(r) for r in same["points"]],
            "front": same["front"],
        },
        "target_ms": target,
        "target_between": [_brief(fast), _brief(slow)],
        "tune": {
            "command": "edgedet " + " ".join(tune_args),
            "first_run_s": round(first_s, 1),
            "second_run_s": round(second_s, 1),
            "second_over_first": round(second_s / first_s, 3),
            "chosen": {k: chosen[k] for k in ("label", "executed", "AP", "speed", "gate", "decision")},
            "points": [_brief(r) for r in first["points"]],
            "skipped": first["skipped"],
            "second_run_measured": second["measured_this_run"],
        },
        "bench": {
            "command": "edgedet " + " ".join(bench_args),
            "AP": row["AP"],
            "e2e_ms": row["e2e_ms"],
            "executed_precision": row["executed_precision"],
        },
        "checks": checks,
        "environment": environment(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    return write_checks(out / "summary.json", summary)


def _key(chosen: dict) -> str:
    from edgedet.benchmarks.tune_space import Candidate

    c = dict(chosen["candidate"])
    c["options"] = tuple(tuple(o) for o in c.get("options", ()))
    return Candidate(**c).key()


def _brief(r: dict) -> dict:
    keys = ("label", "key", "status", "executed", "p50_ms", "p90_ms", "round_p50_ms", "subset_AP", "AP", "on_front")
    return {k: r.get(k) for k in keys} | {"gate_passed": (r.get("gate") or {}).get("passed")}


if __name__ == "__main__":
    raise SystemExit(main())
