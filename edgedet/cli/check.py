"""`edgedet check`: a backend's static compatibility check of an ONNX file (runs without the backend)."""

from __future__ import annotations

import json
from pathlib import Path

from edgedet.errors import EdgeDetError, InputError
from edgedet.registry import BACKENDS

from .common import names, positive

HELP = "static compatibility check of an ONNX file for a backend (runs without the backend)"


def add_arguments(p):
    p.add_argument("onnx", help="ONNX file")
    p.add_argument(
        "--backend",
        default="tensorrt",
        help=f"backend whose parser rules to check against: {names(BACKENDS.values(), lambda b: b.static_check)}",
    )
    p.add_argument(
        "--trt-version",
        help="TensorRT version whose operator table to check against (e.g. 8.6, 10.3, 11.1; default: the installed "
        "TensorRT, else the newest table)",
    )
    p.add_argument("--min-batch", type=positive)
    p.add_argument("--max-batch", type=positive)
    p.add_argument("--json", action="store_true")


def batch_range(onnx: Path, lo, hi):
    if lo is None and hi is None:
        try:
            from edgedet.manifest import Manifest

            b = Manifest.read(onnx, verify=False).batch
            return b.min, b.max
        except EdgeDetError:
            pass
    return lo, hi


def static_check(spec, onnx: Path, lo, hi, version: str | None = None):
    """The backend's static check; `version` (a library version, e.g. TensorRT's) goes to checks that take one."""
    import inspect

    from edgedet.registry import BACKENDS, load_object

    if not spec.static_check:
        with_check = ", ".join(b.name for b in BACKENDS.values() if b.static_check)
        raise InputError(f"backend '{spec.name}' has no static check; backends with one: {with_check}")
    check = load_object(spec.static_check)
    versioned = "version" in inspect.signature(check).parameters
    if version is not None and not versioned:
        raise InputError(f"the {spec.name} check has no per-version tables: drop --trt-version")
    try:
        return check(onnx, lo, hi, version=version) if versioned else check(onnx, lo, hi)
    except EdgeDetError:
        raise
    except Exception as e:  # onnx.load of a corrupt file
        raise InputError(f"cannot read {onnx} as ONNX: {str(e).splitlines()[0][:200]}") from None


def print_report(rep, onnx, spec, file=None) -> None:
    for f in rep.findings:
        print(f"{f.level:7s} {f.message}", file=file)
    target = f" {rep.tensorrt}" if getattr(rep, "tensorrt", "") else ""
    print(
        f"{'PASS' if rep.ok else 'FAIL'}: {onnx} for {spec.name}{target} ({sum(rep.ops.values())} nodes, "
        f"{len(rep.ops)} op types" + (f", {rep.qdq['nodes']} Q/DQ" if rep.qdq else "") + ")",
        file=file,
    )


def run(a) -> int:
    from edgedet.registry import get_backend

    spec = get_backend(a.backend)
    onnx = Path(a.onnx)
    if not onnx.is_file():
        raise InputError(f"ONNX file not found: {onnx}")
    rep = static_check(spec, onnx, *batch_range(onnx, a.min_batch, a.max_batch), version=a.trt_version)
    if a.json:
        print(json.dumps(rep.to_dict(), indent=2))
    else:
        print_report(rep, onnx, spec)
    return 0 if rep.ok else 1
