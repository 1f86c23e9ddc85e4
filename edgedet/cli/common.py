"""Argument types and helpers shared by the commands."""

from __future__ import annotations

import argparse
import json


def models(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one model name")
    return names


def batch(value: str):
    if value == "dynamic":
        return value
    try:
        b = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch must be a positive integer or 'dynamic', got {value!r}") from None
    if b < 1:
        raise argparse.ArgumentTypeError("batch must be >= 1")
    return b


def _number(kind: type, accept, expected: str):
    """An argparse type: `kind(value)` that `accept` admits, else one line saying what was expected."""

    def parse(value: str):
        try:
            v = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}") from None
        if not accept(v):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {v}")
        return v

    return parse


positive = _number(int, lambda v: v >= 1, "a positive integer")
nonnegative = _number(int, lambda v: v >= 0, "a whole number >= 0")
probability = _number(float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")
positive_float = _number(float, lambda v: v > 0, "a positive number")


def names(items, where=lambda item: True) -> str:
    """A help text's list of table rows (backends, formats), from the table itself: it cannot go stale."""
    return ", ".join(i.name for i in items if where(i))


def add_detector_arguments(p) -> None:
    """The arguments that name a Detector (read by load_detector / artifact_of): what runs, where, how strict."""
    p.add_argument(
        "--model",
        required=True,
        help="artifact (.onnx, .xml, .pth, .engine), model name, or server URL (grpc://host:8001/d0)",
    )
    from edgedet.registry import BACKENDS

    p.add_argument("--backend", help=f"{names(BACKENDS.values())} (default: by artifact format)")
    p.add_argument("--device", help="cpu, cuda, cuda:N, gpu (OpenVINO)")
    p.add_argument("--weights", help="weights for a model name")
    p.add_argument("--imgsz", type=positive, help="input size for a model name")
    p.add_argument("--conf", type=probability, default=0.25, help="score threshold")


def add_nms_arguments(p) -> None:
    """Run-time post-processing (the Detector's iou_threshold, max_det, classes): always with host NMS; with
    in-graph NMS where the graph takes them as inputs (ONNX Runtime), else one line saying they were fixed."""
    g = p.add_argument_group("post-processing at run time")
    g.add_argument("--iou", type=probability, help="NMS IoU threshold (default: the artifact's)")
    g.add_argument("--max-det", type=positive, help="at most this many detections per image (default: the artifact's)")
    g.add_argument("--classes", type=class_list, help="keep only these classes: indices or names, comma separated")


def class_list(value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give at least one class index or name")
    return items


def nms_keywords(a) -> dict:
    """The Detector keywords of --iou / --max-det / --classes that were given."""
    given = {"iou_threshold": a.iou, "max_det": a.max_det, "classes": a.classes}
    return {k: v for k, v in given.items() if v is not None}


def emit(obj, as_json: bool, text: str) -> None:
    print(json.dumps(obj, indent=2) if as_json else text)


def resolve_backend(a):
    """--backend as given, or for a model name the measured default (said on stderr, with why)."""
    import sys

    from edgedet.api import choose_backend, fastest_backend, is_model_name
    from edgedet.devices import parse_device

    if a.backend or not is_model_name(a.model):
        return a.backend
    if parse_device(getattr(a, "device", None)).kind != "cpu":
        return fastest_backend(a.model, device=a.device)
    choice = choose_backend(a.model, **build_keywords(a))
    print(f"backend: {choice.backend.name} ({choice.reason})", file=sys.stderr)
    return choice.backend


def build_keywords(a) -> dict:
    return {k: v for k, v in (("weights", getattr(a, "weights", None)), ("imgsz", getattr(a, "imgsz", None))) if v}


def load_detector(a, **options):
    """The Detector of --model/--backend/--device/--conf (+ --weights/--imgsz for a model name)."""
    from edgedet.api import load

    a.backend = resolve_backend(a)
    return load(a.model, backend=a.backend, device=a.device, score_threshold=a.conf, **build_keywords(a), **options)


def artifact_of(a) -> str:
    """--model as an artifact path: a model name is built (cached) for --backend; a given artifact's manifest is
    read here, so a bad one fails in one line before any engine (Ray) starts."""
    from edgedet.api import build, is_model_name
    from edgedet.manifest import Manifest
    from edgedet.registry import remote_backend

    if is_model_name(a.model):
        return str(build(a.model, resolve_backend(a), **build_keywords(a)).path)
    if remote_backend(a.model) is None:  # a server URL (grpc://...) is checked when each worker connects
        Manifest.read(a.model)
    return a.model
