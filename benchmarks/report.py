"""Bench outputs: terminal table, JSON, CSV, and the FPS-vs-FLOPs plot (log-x)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import edgedet.precision as gates
from edgedet.fileio import atomic_path, write_json_atomic

COLUMNS = [
    "model",
    "backend",
    "precision",
    "runs as",
    "GFLOPs",
    "gpu p50",
    "net p50",
    "e2e p50",
    "e2e p90",
    "e2e p99",
    "FPS b1",
    "thr FPS",
    "FPS/GFLOP",
    "GFLOP/s",
    "%peak",
    "AP",
    "AP50",
    "AP f32",
    "gate",
    "cold ms",
]


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _cells(r: dict) -> list[str]:
    thr = r.get("throughput") or {}
    gpu = r.get("device_ms") or {}
    peak = r.get("fraction_of_gemm_peak")
    return [
        r["model"],
        r["backend"],
        r["precision"],
        r.get("executed_precision", "-"),
        f"{r['gflops']:.2f}",
        _fmt(gpu.get("p50"), ".2f"),
        f"{r['net_ms']['p50']:.2f}",
        f"{r['e2e_ms']['p50']:.2f}",
        f"{r['e2e_ms']['p90']:.2f}",
        f"{r['e2e_ms']['p99']:.2f}",
        f"{r['fps_b1']:.1f}",
        f"{thr['fps']:.1f}@b{thr['batch']}" if thr else "-",
        f"{r['fps_per_gflop']:.2f}",
        _fmt(r.get("achieved_gflops_per_s"), ".1f"),
        _fmt(None if peak is None else 100 * peak, ".1f"),
        _fmt(r.get("AP"), ".4f"),
        _fmt(r.get("AP50"), ".4f"),
        _fmt(r.get("AP_f32"), ".4f"),
        _gate_cell(r.get("precision_gate")),
        _fmt(r.get("cold_start_ms"), ".0f"),
    ]


def _gate_cell(gate: dict | None) -> str:
    if not gate:
        return "-"
    if "passed" not in gate:
        return "n/a"
    return f"{'pass' if gate['passed'] else 'FAIL'} {gate['drop']:+.4f}"


def executed_label(r: dict) -> str:
    """A row's precision as executed (what plots label it by): 'bf16' for an f32 artifact OpenVINO ran in bf16."""
    from edgedet.precision import float_part, is_int8

    executed = r.get("executed_precision")
    if not executed:
        return r["precision"]
    fp = float_part(executed)
    return f"int8+{fp}" if is_int8(executed) and fp else "int8" if is_int8(executed) else fp or executed


def table(report: dict) -> str:
    rows = [_cells(r) for r in report["rows"] + report["baselines"]]
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(COLUMNS)]
    fmt = lambda cells: "  ".join(c.rjust(w) if i > 2 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    lines = [fmt(COLUMNS), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]
    env = report["environment"]
    lines.append(
        "latency in ms, p50/p90/p99 of per-iteration times; e2e = image in, detections out; net = the "
        "inference call (with copies) timed inside the same e2e iterations, so net <= e2e; gpu = device "
        "compute by CUDA events; GFLOPs = 2 x multiply-adds; GFLOP/s = GFLOPs / net p50; %peak = GFLOP/s "
        "over the GEMM rate of the precision the row executed, measured in this run with the row's own backend; "
        "'runs as' = the precision the backend executed; AP f32 = the same artifact in f32 arithmetic, for rows "
        f"that run below f32, and gate = its AP drop against --max-ap-drop ({report['config'].get('max_ap_drop')})"
    )
    for name, p in _peaks(report).items():
        lines.append(f"peak {name}: {p['gflops_per_s']} GFLOP/s ({p['how']})")
    for r in report["rows"]:
        for key in ("peak_note", "precision_note"):
            if r.get(key):
                lines.append(f"{r['model']} {r['backend']} {r.get('executed_precision')}: {r[key]}")
    lines.append(
        f"{env['cpu']}, {env['affinity_cores']} cores, ISA {' '.join(env.get('cpu_flags') or ['?'])}"
        + (f", {env['gpu']}" if env.get("gpu") else "")
    )
    for r in report.get("ratios", []):
        where = (
            ""
            if (r.get("best_device") or "CPU").startswith("CPU")
            == (r.get("baseline_device") or "CPU").startswith("CPU")
            else f" (edgedet on {r.get('best_device')}, baseline on {r.get('baseline_device')})"
        )
        ran = r.get("best_executed_precision")
        runs = f", runs {ran}" if ran and gates.is_reduced(ran) else ""  # the artifact's precision is not what ran
        lines.append(
            f"{r['model']}: best edgedet ({r['best_backend']} {r['best_precision']}{runs}) {r['best_e2e_p50_ms']:.2f} ms "
            f"vs effdet eager {r['baseline_e2e_p50_ms']:.2f} ms end-to-end: {r['speedup_vs_effdet_eager']:.2f}x" + where
        )
    if report.get("interrupted"):
        lines.append("INTERRUPTED: rows above are the ones completed before Ctrl-C")
    return "\n".join(lines)


def _peaks(report: dict) -> dict:
    """The GEMM peaks the rows were set against, by backend and precision."""
    out = {}
    for r in report["rows"]:
        p = r.get("peak")
        if p:
            out.setdefault(f"{r['backend'] if not p['how'].startswith('numpy') else 'numpy'} {p['precision']}", p)
    return out


def flat_rows(report: dict) -> list[dict]:
    out = []
    for r in report["rows"] + report["baselines"]:
        thr = r.get("throughput") or {}
        out.append(
            {
                "model": r["model"],
                "backend": r["backend"],
                "precision": r["precision"],
                "device": r.get("device"),
                "input": "x".join(map(str, r["input_size"])),
                "params": r["params"],
                "gmacs": r["gmacs"],
                "gflops": r["gflops"],
                "gpu_p50_ms": (r.get("device_ms") or {}).get("p50"),
                "net_p50_ms": r["net_ms"]["p50"],
                "net_p90_ms": r["net_ms"]["p90"],
                "net_p99_ms": r["net_ms"]["p99"],
                "e2e_p50_ms": r["e2e_ms"]["p50"],
                "e2e_p90_ms": r["e2e_ms"]["p90"],
                "e2e_p99_ms": r["e2e_ms"]["p99"],
                "fps_b1": r["fps_b1"],
                "throughput_fps": thr.get("fps"),
                "throughput_batch": thr.get("batch"),
                "fps_per_gflop": r["fps_per_gflop"],
                "build_s": r.get("build_s"),
                "cold_start_ms": r.get("cold_start_ms"),
                "executed_precision": r.get("executed_precision"),
                "achieved_gflops_per_s": r.get("achieved_gflops_per_s"),
                "fraction_of_gemm_peak": r.get("fraction_of_gemm_peak"),
                "peak_gflops_per_s": (r.get("peak") or {}).get("gflops_per_s"),
                "peak_precision": (r.get("peak") or {}).get("precision"),
                "AP": r.get("AP"),
                "AP50": r.get("AP50"),
                "AP_f32": r.get("AP_f32"),
                "precision_gate_passed": (r.get("precision_gate") or {}).get("passed"),
            }
        )
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
        p = plot_ap_vs_latency(report, out_dir / "ap_vs_latency.png")
        if p:
            paths["ap_plot"] = p
    return {k: str(v) for k, v in paths.items()}


def _pyplot():
    """matplotlib's pyplot on the Agg backend, or None where matplotlib is not installed (plots are skipped)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both latency (lower) and AP (higher)."""
    return [
        i
        for i, (lat, ap) in enumerate(points)
        if not any((l2 <= lat and a2 >= ap) and (l2 < lat or a2 > ap) for l2, a2 in points)
    ]


def plot_ap_vs_latency(report: dict, path: Path) -> Path | None:
    """One point per model, backend and precision (rows evaluated with --data), the Pareto front marked."""
    rows = [r for r in report["rows"] if r.get("AP") is not None]
    plt = _pyplot()
    if plt is None:
        return None
    if not rows:
        return None
    pts = [(r["e2e_ms"]["p50"], r["AP"]) for r in rows]
    front = sorted(pareto(pts), key=lambda i: pts[i][0])
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    for r, (lat, ap) in zip(rows, pts):
        ax.scatter(lat, ap, s=30)
        ax.annotate(
            f"{r['model']} {r['backend']} {executed_label(r)}",
            (lat, ap),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=7,
        )
    ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "k--", label="Pareto front")
    ax.set_xlabel("end-to-end latency p50 at batch 1 (ms)")
    ax.set_ylabel("AP (COCO, --data)")
    ax.set_title(f"accuracy vs latency - {report['environment']['cpu']}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def plot_fps_vs_flops(report: dict, path: Path) -> Path | None:
    plt = _pyplot()
    if plt is None:
        return None
    series: dict[str, list[dict]] = {}
    for r in report["rows"] + report["baselines"]:
        series.setdefault(f"{r['backend']} {executed_label(r)}", []).append(r)
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    for name, rows in series.items():
        rows = sorted(rows, key=lambda r: r["gflops"])
        x, y = [r["gflops"] for r in rows], [r["fps_b1"] for r in rows]
        ax.plot(x, y, marker="o", label=name, linestyle="--" if "baseline" in name else "-")
        for r in rows:
            ax.annotate(
                r["model"].upper(), (r["gflops"], r["fps_b1"]), textcoords="offset points", xytext=(4, 4), fontsize=8
            )
    env = report["environment"]
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("GFLOPs per image (2 x multiply-adds, log)")
    ax.set_ylabel("end-to-end FPS at batch 1 (log)")
    ax.set_title(
        f"EfficientDet FPS vs FLOPs - {env['cpu']}" + (f" / {env['gpu']}" if env.get("gpu") else ""), fontsize=9
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)
