"""The accuracy gate: COCO mAP of an artifact through the runtime Detector. The one place where converters
use runtimes (DESIGN.md: converters import runtimes only to evaluate what they built)."""
from __future__ import annotations

from pathlib import Path


def evaluate(path: Path, val: str, val_images: str | None, backend: str | None = None) -> float:
    """AP of the artifact on its backend (default: by format) in exact FP32 arithmetic (no reduced-precision
    runtime hints, so FP32 and INT8 are compared as built)."""
    from edgedet.evaluation import evaluate_detector
    from edgedet.registry import backend_for
    from edgedet.runtimes import Detector
    spec = backend_for(path, backend)
    with Detector.load(path, backend=spec, **spec.exact_options) as det:
        return evaluate_detector(det, val, val_images)["AP"]
