"""What `edgedet tune` leaves behind: the chosen artifact with its evidence in the manifest, a table and a plot of
every measured point with the Pareto front, the JSON report, and the commands that reproduce and verify the choice."""

from __future__ import annotations

import csv
import io
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from edgedet.fileio import atomic_path, publish, write_json_atomic
from edgedet.manifest import Manifest
from edgedet.precision import REDUCED, float_part

from .report import _pyplot, _save


def _row(search, e, front_keys: set, chosen) -> dict:
    t = search.req.target
    point = e.point
    speed = point.get("speed") or {}
    full = (point.get("ap") or {}).get(search.full_key) or {}
    subset = (point.get("ap") or {}).get(search.subset_key) or {}
    return {
        "label": e.cand.label,
        "key": e.cand.key(),
        "status": e.status,
        "executed": point.get("executed"),
        "p50_ms": speed.get("p50"),
        "p90_ms": speed.get("p90"),
        "round_p50_ms": speed.get("round_p50"),
        "fps": speed.get("fps"),
        "ms_per_frame": t.ms_per_frame(point) if speed else None,
        "meets_speed": t.speed_ok(point) if speed else None,
        "subset_AP": subset.get("AP"),
        "AP": full.get("AP"),
        "AP50": full.get("AP50"),
        "gate": point.get("gate"),
        "on_front": e.cand.key() in front_keys,
        "chosen": chosen is not None and e is chosen,
        "why": point.get("why") or (f"same as {point['of']}" if point.get("of") else None),
        "candidate": asdict(e.cand),
        "artifact": point.get("artifact"),
    }


def summary(search, chosen, interrupted: bool) -> dict:
    req, t = search.req, search.req.target
    front = search.front() if not interrupted else []
    front_keys = {e.cand.key() for e in front}
    rows = [_row(search, e, front_keys, chosen) for e in search.entries.values()]
    rows.sort(key=lambda r: (r["ms_per_frame"] is None, r["ms_per_frame"] or 0))
    report = {
        "target": {"kind": t.kind, "value": t.value, "streams": t.streams, "text": t.describe()},
        "machine": search.store.machine,
        "data": {"annotations": str(req.data), "images": len(search.dataset.images), "subset": len(search.subset)},
        "max_ap_drop": req.max_ap_drop,
        "exhaustive": req.exhaustive,
        "budget_min": req.budget_min,
        "points": rows,
        "front": [e.cand.label for e in front],
        "chosen": None,
        "skipped": search.skipped,
        "measured_this_run": search.measured_now,
        "from_cache": search.store.loaded,
        "cache": str(search.store.root),
        "interrupted": interrupted,
        "seconds": round(time.perf_counter() - search.t0, 1),
    }
    if chosen is not None:
        report["chosen"] = _decision(search, chosen, front)
    out = Path(req.out)
    out.mkdir(parents=True, exist_ok=True)
    if chosen is not None:
        report["chosen"]["exported"] = str(export(search, chosen, report))
        art = report["chosen"]["exported"]
        report["reproduce"] = f"edgedet detect --model {art} --source {Path(search.dataset.images[0].path).parent}"
        report["verify"] = f"edgedet bench --artifact {art} --data {req.data} --no-baseline --iters {req.iters}"
    report["outputs"] = write(report, out)
    report["seconds"] = round(time.perf_counter() - search.t0, 1)
    write_json_atomic(out / "tune.json", report)
    return report


def _decision(search, chosen, front) -> dict:
    t = search.req.target
    ap = (chosen.point["ap"][search.full_key])["AP"]
    ms = t.ms_per_frame(chosen.point)
    rule = (
        "the fastest measured deployment whose full AP reaches the target"
        if t.kind == "min_ap"
        else "the highest full AP among the measured deployments that meet the speed target"
    )
    return {
        "label": chosen.cand.label,
        "candidate": asdict(chosen.cand),
        "executed": chosen.executed,
        "runtime_options": chosen.cand.runtime_options(),
        "AP": ap,
        "AP50": chosen.point["ap"][search.full_key]["AP50"],
        "speed": chosen.point["speed"],
        "ms_per_frame": ms,
        "gate": chosen.point.get("gate"),
        "int8_gate": chosen.point.get("int8_gate"),
        "on_front": chosen in front,
        "decision": f"{chosen.cand.label} (runs {chosen.executed}): AP {ap:.4f} at {ms:.2f} ms per frame; {rule}",
    }


def export(search, chosen, report: dict) -> Path:
    """The chosen artifact copied into --out, its manifest extended with the target, the decision and its evidence
    (extra["tune"]), the runtime options it was measured with (extra["runtime_options"], the runner's defaults for
    this artifact) and the verdict of its reduced precision (extra["precision_gates"])."""
    src = Path(chosen.point["artifact"])
    m = Manifest.read(src)
    files = [src] + [src.with_name(f) for f in (m.artifact.extra_files if m.artifact else [])]
    dest = Path(search.req.out) / src.name
    evidence = {
        "target": report["target"],
        "decision": report["chosen"]["decision"],
        "evidence": {
            "AP": report["chosen"]["AP"],
            "AP50": report["chosen"]["AP50"],
            "data": report["data"],
            "speed": report["chosen"]["speed"],
            "executed": chosen.executed,
            "gate": report["chosen"]["gate"],
            "int8_gate": report["chosen"]["int8_gate"],
            "front": report["front"],
            "points_measured": sum(r["status"] == "measured" for r in report["points"]),
            "machine": {k: report["machine"][k] for k in ("cpu", "flags")},
        },
        "candidate": report["chosen"]["candidate"],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    extra = {"tune": evidence, "runtime_options": {chosen.cand.backend: chosen.cand.runtime_options()}}
    # the same file as the chosen artifact: its own verdicts (calibrate's) hold for the copy, then tune's
    extra["precision_gates"] = dict(m.extra.get("precision_gates") or {})
    gate = report["chosen"]["gate"]
    reduced = float_part(chosen.executed)
    if gate and gate.get("passed") is not None and reduced in REDUCED:
        extra["precision_gates"][f"{chosen.cand.backend}:{reduced}"] = gate
    with publish(dest) as tmp:
        for f in files[1:]:
            shutil.copy(f, tmp.with_name(f.name))
        shutil.copy(src, tmp)
        m.derive(extra=extra).write(tmp, extra_files=tuple(f.name for f in files[1:]))
    return dest


COLUMNS = ["point", "status", "runs as", "p50 ms", "p90 ms", "fps", "meets", "subset AP", "AP", "gate", "front"]


def _cells(r: dict) -> list[str]:
    f = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    gate = r.get("gate") or {}
    return [
        ("* " if r["chosen"] else "  ") + r["label"],
        r["status"],
        str(r["executed"] or "-"),
        f(r["p50_ms"], ".2f"),
        f(r["p90_ms"], ".2f"),
        f(r["fps"], ".1f"),
        "-" if r["meets_speed"] is None else ("yes" if r["meets_speed"] else "no"),
        f(r["subset_AP"], ".4f"),
        f(r["AP"], ".4f"),
        "-" if not gate else ("pass" if gate.get("passed") else "FAIL" if gate.get("passed") is False else "n/a"),
        "front" if r["on_front"] else "",
    ]


def table(report: dict) -> str:
    rows = [_cells(r) for r in report["points"]]
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(COLUMNS)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    lines = [f"target: {report['target']['text']}", fmt(COLUMNS), fmt(["-" * w for w in widths])]
    lines += [fmt(r) for r in rows]
    m = report["machine"]
    lines.append(
        f"{m['cpu']}; {' '.join(m['flags'])}; p50/p90 of end-to-end calls in interleaved rounds; AP on "
        f"{report['data']['images']} images (subset: {report['data']['subset']}); gate: AP drop of a reduced "
        f"precision against f32 <= {report['max_ap_drop']}"
    )
    ch = report.get("chosen")
    lines.append(f"chosen: {ch['decision']}" if ch else "no measured deployment meets the target")
    for s in report["skipped"]:
        lines.append(f"skipped {s['what']}: {s['why']}")
    if report.get("reproduce"):
        lines.append(f"reproduce: {report['reproduce']}")
        lines.append(f"verify:    {report['verify']}")
    lines.append(
        f"{report['measured_this_run']} measurements taken in this run, {report['from_cache']} points from the cache "
        f"({report['cache']}), {report['seconds']} s"
    )
    if report["interrupted"]:
        lines.append("INTERRUPTED: the measured points are kept; run the same command to continue")
    return "\n".join(lines)


def write(report: dict, out: Path) -> dict:
    paths = {"json": out / "tune.json", "table": out / "tune.txt", "csv": out / "tune_points.csv"}
    with atomic_path(paths["table"]) as tmp:
        Path(tmp).write_text(table(report) + "\n")
    buf = io.StringIO()
    keys = [k for k in report["points"][0] if k not in ("candidate", "gate")] if report["points"] else []
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    w.writerows(report["points"])
    with atomic_path(paths["csv"]) as tmp:
        Path(tmp).write_text(buf.getvalue())
    plot = plot_points(report, out / "tune_pareto.png")
    if plot:
        paths["plot"] = plot
    return {k: str(v) for k, v in paths.items()}


def plot_points(report: dict, path: Path) -> Path | None:
    """Every measured point (filled: full AP; hollow: subset AP only), the Pareto front, the target and the choice."""
    plt = _pyplot()
    pts = [r for r in report["points"] if r["ms_per_frame"] is not None and (r["AP"] or r["subset_AP"]) is not None]
    if plt is None or not pts:
        return None
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    for r in pts:
        full = r["AP"] is not None
        ap = r["AP"] if full else r["subset_AP"]
        ax.scatter(r["ms_per_frame"], ap, s=30, facecolors=None if full else "none", edgecolors="C0")
        ax.annotate(r["label"], (r["ms_per_frame"], ap), textcoords="offset points", xytext=(4, 3), fontsize=6)
        if r["chosen"]:
            ax.scatter(r["ms_per_frame"], ap, s=160, facecolors="none", edgecolors="red", label="chosen")
    front = sorted((r for r in pts if r["on_front"]), key=lambda r: r["ms_per_frame"])
    ax.plot([r["ms_per_frame"] for r in front], [r["AP"] for r in front], "k--", label="Pareto front (full AP)")
    t = report["target"]
    if t["kind"] == "latency":
        ax.axvline(t["value"], color="grey", linestyle=":", label="target")
    elif t["kind"] == "fps":
        ax.axvline(1000.0 / (t["value"] * t["streams"]), color="grey", linestyle=":", label="target")
    else:
        ax.axhline(t["value"], color="grey", linestyle=":", label="target")
    ax.set_xlabel("end-to-end ms per frame (p50)")
    ax.set_ylabel("AP (hollow: subset only)")
    ax.set_title(f"edgedet tune - {report['machine']['cpu']}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)
