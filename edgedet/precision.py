"""Executed precisions, and the accuracy gate of every precision below f32.

A backend may execute below the precision an artifact was built in: OpenVINO runs f32 artifacts in bf16 by default
on CPUs with AVX-512 BF16 or AMX, and in f16 on GPUs; TensorRT and torch run fp16 where asked. Such a precision is
gated like INT8 (docs/architecture.md): its COCO AP is measured against f32 arithmetic on the same artifact and a
validation set, and a drop over the budget fails it. Failed precisions are never chosen by default: a runner that
picks its own precision (OpenVINO) asks `failed()` first and runs f32 instead, and `edgedet tune` and the measured
default backend only ever see the precision the runner then executes.

Verdicts live in two places, both read by `failed()`:
- the artifact's own manifest, `extra["precision_gates"]` ({"<backend>:<precision>": verdict}), written by
  `edgedet calibrate` and `edgedet tune` into the artifacts they write, so the verdict travels with the file;
- this machine's record, `<cache>/precision_gates.json`, keyed by the artifact's file hashes (and, for float
  artifacts, by the ONNX they were converted from: an IR computes what its ONNX computes), backend and precision,
  written by `edgedet bench --data`, `calibrate` and `tune` for artifacts they did not write (the artifact cache's
  entries, whose manifests are not rewritten).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from dataclasses import asdict

from .fileio import locked, write_json_atomic
from .weights import cache_dir

FLOAT_NAMES = {"fp32": "f32", "f32": "f32", "float32": "f32", "bf16": "bf16", "bfloat16": "bf16"}
FLOAT_NAMES |= {"fp16": "f16", "f16": "f16", "float16": "f16", "half": "f16"}
REDUCED = ("bf16", "f16")  # float precisions below f32
DEFAULT_BUDGET = 0.01  # AP drop, the same default as calibrate's --max-map-drop


def float_part(executed: str | None) -> str | None:
    """The float precision in a runner's `execution_precision` ('bf16', 'int8 + bf16', 'fp32 (CPUExecutionProvider)',
    "<Type: 'bfloat16'>"): f32, bf16 or f16; None where it names none (a bare 'int8', 'unknown')."""
    for token in re.findall(r"[a-z0-9]+", str(executed or "").lower()):
        if token in FLOAT_NAMES:
            return FLOAT_NAMES[token]
    return None


def is_int8(executed: str | None) -> bool:
    """True when the executed (or built) precision includes int8."""
    return "int8" in str(executed or "").lower()


def is_reduced(executed: str | None) -> bool:
    """True when the backend executes a float precision below f32 (alone or beside int8)."""
    return float_part(executed) in REDUCED


def artifact_identity(manifest) -> str:
    """What runs: every file of the artifact (an OpenVINO .xml with another .bin is another artifact) and the
    manifest sections that change what the Detector does with it (a torch state dict is the same file at every
    input size)."""
    art = manifest.artifact
    if art is None:
        return ""
    files = {art.file: art.sha256, **art.files_sha256}
    body = {"files": files, "model": manifest.model, "input": asdict(manifest.input)}
    body |= {"postprocess": asdict(manifest.postprocess), "batch": asdict(manifest.batch)}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:24]


def lineage(manifest) -> str:
    """The float model an artifact holds, across formats: an OpenVINO IR converted from an ONNX computes what that
    ONNX computes, so a verdict for one holds for the other (same source ONNX hash and build precision). INT8
    artifacts have none: two calibrations of one ONNX are different models."""
    if manifest.artifact is None or is_int8(manifest.precision):
        return ""
    # the exported graph before its manifest was embedded (recorded by the ONNX export, inherited by every artifact
    # derived from it); older artifacts have none and share no verdict across formats
    onnx = (manifest.extra or {}).get("float_graph_sha256", "")
    return f"onnx:{onnx}:{manifest.precision}" if onnx else ""


def _keys(manifest) -> list[str]:
    return [k for k in (artifact_identity(manifest), lineage(manifest)) if k]


def gate_key(backend: str, precision: str) -> str:
    return f"{backend}:{precision}"


def verdict(ap: float, f32_ap: float, budget: float = DEFAULT_BUDGET, **evidence) -> dict:
    """A gate verdict: AP at the reduced precision against f32 on the same artifact and data."""
    drop = round(float(f32_ap) - float(ap), 5)
    return {
        "AP": round(float(ap), 5),
        "f32_AP": round(float(f32_ap), 5),
        "drop": drop,
        "max_ap_drop": budget,
        "passed": drop <= budget,
        **evidence,
    }


def _store():
    return cache_dir() / "precision_gates.json"


def _read() -> dict:
    try:
        data = json.loads(_store().read_text())
    except (OSError, ValueError):
        return {}  # absent or damaged: no verdicts (a damaged record is rewritten by the next gate)
    return data if isinstance(data, dict) else {}


def record(manifest, backend: str, precision: str, result: dict) -> None:
    """Keep a verdict for this artifact, backend and precision on this machine (the latest gate wins)."""
    keys = _keys(manifest)
    if not keys or precision not in REDUCED:
        return
    path = _store()
    with locked(path.with_suffix(".lock")):
        data = _read()
        for key in keys:
            data[f"{key}/{gate_key(backend, precision)}"] = {
                **result,
                "artifact": manifest.artifact.file,
                "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),  # as Manifest.created
            }
        write_json_atomic(path, data)


def lookup(manifest, backend: str, precision: str) -> dict | None:
    """The verdict for this artifact at this precision: the newer of its manifest's own (dated by the manifest)
    and this machine's record, so a later `bench --data` that fails a precision overrides a pass the artifact
    was exported with."""
    found = []
    own = (manifest.extra or {}).get("precision_gates", {})
    if isinstance(own, dict) and isinstance(own.get(gate_key(backend, precision)), dict):
        hit = own[gate_key(backend, precision)]
        found.append((str(hit.get("date") or manifest.created or ""), hit))
    data = _read()
    for key in _keys(manifest):
        hit = data.get(f"{key}/{gate_key(backend, precision)}")
        if isinstance(hit, dict):
            found.append((str(hit.get("date", "")), hit))
            break
    return max(found, key=lambda f: f[0])[1] if found else None


def failed(manifest, backend: str, precision: str | None) -> dict | None:
    """The failing verdict when `precision` (a reduced float precision) failed its gate for this artifact on this
    backend; None when it passed or was never gated."""
    if precision not in REDUCED:
        return None
    hit = lookup(manifest, backend, precision)
    return hit if hit is not None and hit.get("passed") is False else None


def failed_fingerprint() -> str:
    """A hash of every failed verdict on this machine: a measurement that depends on which precisions may run by
    default (the measured default backend) is redone when it changes."""
    failed_keys = sorted(k for k, v in _read().items() if isinstance(v, dict) and v.get("passed") is False)
    return hashlib.sha256(json.dumps(failed_keys).encode()).hexdigest()[:16]
