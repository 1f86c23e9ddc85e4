"""Bench outputs: terminal table, JSON, CSV, and the FPS-vs-FLOPs plot (log-x)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from edgedet.fileio import atomic_path, write_json_atomic

COLUMNS = ["model", "backend", "precision", "GFLOPs", "gpu p50", "net p50", "e2e p50", "e2e p90", "e2e p99", "FPS b1",
           "thr FPS", "FPS/GFLOP", "cold ms"]


def _cells(r: dict) -> list[str]:
    thr = r.get("throughput") or {}
    gpu = r.get("device_ms")
    return [r["model"], r["backend"], r["precision"], f"{r['gflops']:.2f}", f"{gpu['p50']:.2f}" if gpu else "-",
            f"{r['net_ms']['p50']:.2f}",
            f"{r['e2e_ms']['p50']:.2f}", f"{r['e2e_ms']['p90']:.2f}", f"{r['e2e_ms']['p99']:.2f}", f"{r['fps_b1']:.1f}",
            f"{thr['fps']:.1f}@b{thr['batch']}" if thr else "-", f"{r['fps_per_gflop']:.2f}",
            f"{r['cold_start_ms']:.0f}" if "cold_start_ms" in r else "-"]


def table(report: dict) -> str:
    rows = [_cells(r) for r in report["rows"] + report["baselines"]]
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(COLUMNS)]
    fmt = lambda cells: "  ".join(c.rjust(w) if i > 2 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    lines = [fmt(COLUMNS), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]
    env = report["environment"]
    lines.append(f"latency in ms (p50/p90/p99 over per-iteration times; gpu = device compute by CUDA events, "
                 f"net = inference call with copies, e2e = image in, detections out); GFLOPs = 2 x multiply-adds; "
                 f"{env['cpu']}, {env['affinity_cores']} cores" + (f", {env['gpu']}" if env.get("gpu") else ""))
    for r in report.get("ratios", []):
        lines.append(f"{r['model']}: best edgedet ({r['best_backend']} {r['best_precision']}) {r['best_e2e_p50_ms']:.2f} ms "
                     f"vs effdet eager {r['baseline_e2e_p50_ms']:.2f} ms end-to-end: {r['speedup_vs_effdet_eager']:.2f}x")
    if report.get("interrupted"):
        lines.append("INTERRUPTED: rows above are the ones completed before Ctrl-C")
    return "\n".join(lines)


def flat_rows(report: dict) -> list[dict]:
    out = []
    for r in report["rows"] + report["baselines"]:
        thr = r.get("throughput") or {}
        out.append({
            "model": r["model"], "backend": r["backend"], "precision": r["precision"], "device": r.get("device"),
            "input": "x".join(map(str, r["input_size"])), "params": r["params"], "gmacs": r["gmacs"],
            "gflops": r["gflops"], "gpu_p50_ms": (r.get("device_ms") or {}).get("p50"),
            "net_p50_ms": r["net_ms"]["p50"], "net_p90_ms": r["net_ms"]["p90"],
            "net_p99_ms": r["net_ms"]["p99"], "e2e_p50_ms": r["e2e_ms"]["p50"], "e2e_p90_ms": r["e2e_ms"]["p90"],
            "e2e_p99_ms": r["e2e_ms"]["p99"], "fps_b1": r["fps_b1"], "throughput_fps": thr.get("fps"),
            "throughput_batch": thr.get("batch"), "fps_per_gflop": r["fps_per_gflop"],
            "build_s": r.get("build_s"), "cold_start_ms": r.get("cold_start_ms"),
        })
    return out


def write_outputs(report: dict, out_dir: str | Path, plot: bool = True) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "bench.json", "csv": out_dir / "bench.csv", "table": out_dir / "bench.txt"}
    write_json_atomic(paths["json"], report)
    rows = flat_rows(report)
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with atomic_path(paths["csv"]) as tmp:
        Path(tmp).write_text(buf.getvalue())
    with atomic_path(paths["table"]) as tmp:
        Path(tmp).write_text(table(report) + "\n")
    if plot and rows:
        p = plot_fps_vs_flops(report, out_dir / "fps_vs_flops.png")
        if p:
            paths["plot"] = p
    return {k: str(v) for k, v in paths.items()}


def plot_fps_vs_flops(report: dict, path: Path) -> Path | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    series: dict[str, list[dict]] = {}
    for r in report["rows"] + report["baselines"]:
        series.setdefault(f"{r['backend']} {r['precision']}", []).append(r)
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    for name, rows in series.items():
        rows = sorted(rows, key=lambda r: r["gflops"])
        x, y = [r["gflops"] for r in rows], [r["fps_b1"] for r in rows]
        ax.plot(x, y, marker="o", label=name, linestyle="--" if "baseline" in name else "-")
        for r in rows:
            ax.annotate(r["model"].upper(), (r["gflops"], r["fps_b1"]), textcoords="offset points", xytext=(4, 4),
                        fontsize=8)
    env = report["environment"]
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("GFLOPs per image (2 x multiply-adds, log)")
    ax.set_ylabel("end-to-end FPS at batch 1 (log)")
    ax.set_title(f"EfficientDet FPS vs FLOPs - {env['cpu']}" + (f" / {env['gpu']}" if env.get("gpu") else ""),
                 fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
