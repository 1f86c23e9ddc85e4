"""The default backend, measured: when no backend is named, the installed CPU candidates (BACKENDS rows with
auto=True) are timed end to end on this machine for this model and input size, and the fastest is chosen.

The result is cached in the artifact cache, keyed by CPU model and ISA flags, model, input size and library
versions, so the measurement runs once per machine and model. Which CPU wins differs by machine (AVX2-only vs
AVX-512/VNNI/BF16); nothing here assumes a winner.

Each candidate is timed at the precision it runs by default, which is never one that failed its accuracy gate
(edgedet.precision: OpenVINO runs f32 instead of a failed bf16), and the reason names that precision. A new failed
verdict on this machine changes the cache key, so the choice is measured again."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from importlib import metadata

import numpy as np

from .cpu import cpu_model, vector_flags
from .fileio import locked, write_json_atomic
from .precision import failed_fingerprint
from .registry import BACKENDS, BackendSpec
from .weights import cache_dir

ROUNDS, CALLS = 3, 5  # interleaved rounds, so a drift of the machine hits every candidate alike


@dataclass
class Choice:
    backend: BackendSpec
    reason: str
    medians_ms: dict
    cached: bool


def candidates() -> list[BackendSpec]:
    return [b for b in BACKENDS.values() if b.auto and "cpu" in b.devices and b.available()]


def cpu_identity() -> dict:
    return {"cpu": cpu_model(), "flags": vector_flags()}


def _versions(specs) -> dict:
    out = {}
    for s in specs:
        try:
            out[s.library] = metadata.version(s.library)
        except metadata.PackageNotFoundError:
            out[s.library] = "?"
    return out


def _key(model: str, build: dict, specs) -> str:
    ident = {
        **cpu_identity(),
        "model": model,
        "build": {k: str(v) for k, v in sorted(build.items())},
        "versions": _versions(specs),
        "failed_gates": failed_fingerprint(),
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def measure(detectors: dict, image: np.ndarray) -> dict:
    """Median end-to-end ms per backend, interleaved rounds."""
    times = {name: [] for name in detectors}
    for det in detectors.values():
        for _ in range(2):
            det(image)
    for _ in range(ROUNDS):
        for name, det in detectors.items():
            for _ in range(CALLS):
                t0 = time.perf_counter()
                det(image)
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: round(float(np.median(t)), 3) for name, t in times.items()}


def _executed(det) -> str:
    """The precision a candidate ran at, and why where the runner overrode the device default (a failed gate)."""
    note = getattr(det.runner, "precision_note", "")
    return det.runner.execution_precision + (f"; {note}" if note else "")


def _read_table(path) -> dict:
    try:
        table = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}  # a damaged cache is measured again and rewritten
    return table if isinstance(table, dict) else {}


def _load_all(specs, load) -> dict:
    """A Detector per candidate; a candidate that cannot build or load here is left out, not fatal."""
    detectors = {}
    for s in specs:
        try:
            detectors[s.name] = load(s)
        except Exception as e:  # noqa: BLE001 - reported in the reason, the others still compete
            import warnings

            warnings.warn(f"default-backend candidate {s.name} left out: {e}", stacklevel=3)
    return detectors


def choose(model: str, build: dict, load, image: np.ndarray) -> Choice:
    """`load(spec)` returns a Detector of `model` on that backend (latency options); `build` holds the build
    keywords that change what is timed (part of the cache key)."""
    specs = candidates()
    if len(specs) <= 1:
        spec = specs[0] if specs else BACKENDS["onnxruntime"]
        return Choice(spec, "the only installed CPU backend", {}, False)
    key = _key(model, build, specs)
    path = cache_dir() / "default_backend.json"
    with locked(path.with_suffix(".lock")):
        table = _read_table(path)
        hit = table.get(key)
        if isinstance(hit, dict) and hit.get("backend") in BACKENDS:
            return Choice(BACKENDS[hit["backend"]], hit["reason"] + " (cached)", hit["medians_ms"], True)
        detectors = _load_all(specs, load)
        if not detectors:
            return Choice(specs[0], "no candidate could be measured here", {}, False)
        try:
            medians = measure(detectors, image)
            executed = {n: _executed(d) for n, d in detectors.items()}
        finally:
            for d in detectors.values():
                d.close()
        best = min(medians, key=medians.get)
        ident = cpu_identity()
        reason = (
            "measured fastest here: "
            + ", ".join(f"{n} ({executed[n]}) {m:.1f} ms" for n, m in sorted(medians.items(), key=lambda kv: kv[1]))
            + f" end to end ({ident['cpu']}; {' '.join(ident['flags'])})"
        )
        table[key] = {
            "backend": best,
            "reason": reason,
            "medians_ms": medians,
            "executed_precision": executed,
            "model": model,
            "build": build,
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        write_json_atomic(path, table)
    return Choice(BACKENDS[best], reason, medians, False)
