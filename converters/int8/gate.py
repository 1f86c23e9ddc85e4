"""The accuracy gate: COCO mAP of an artifact through the runtime Detector. The one place where converters
use runtimes (docs/architecture.md: converters import runtimes only to evaluate what they built)."""

from __future__ import annotations

from pathlib import Path


def check_validation(val: str, val_images: str | None) -> None:
    """Refuse, before anything is built, a validation set with no usable annotations: every model scores AP 0 on
    it, so any INT8 model, however broken, would pass the gate."""
    from edgedet.data.coco import load_coco, require_annotations

    require_annotations(load_coco(val, val_images), "the accuracy gate")


def evaluate(path: Path, val: str, val_images: str | None, backend: str | None = None) -> float:
    """AP of the artifact on its backend (default: by format) in exact FP32 arithmetic (no reduced-precision
    runtime hints, so FP32 and INT8 are compared as built)."""
    from edgedet.evaluation import evaluate_detector
    from edgedet.registry import backend_for
    from edgedet.runtimes import Detector

    spec = backend_for(path, backend)
    with Detector.load(path, backend=spec, **spec.exact_options) as det:
        return evaluate_detector(det, val, val_images)["AP"]


def executed_by_default(path: Path, backend: str | None = None) -> str:
    """The precision the backend executes the artifact in at its runtime defaults (what a user who names no
    precision gets: OpenVINO runs f32 artifacts in bf16 on BF16/AMX CPUs)."""
    from edgedet.registry import backend_for
    from edgedet.runtimes import Detector

    with Detector.load(path, backend=backend_for(path, backend)) as det:
        return det.runner.execution_precision


def evaluate_as_run(path: Path, val: str, val_images: str | None, backend: str | None = None) -> float:
    """AP of the artifact at its backend's runtime defaults."""
    from edgedet.evaluation import evaluate_detector
    from edgedet.registry import backend_for
    from edgedet.runtimes import Detector

    with Detector.load(path, backend=backend_for(path, backend)) as det:
        return evaluate_detector(det, val, val_images)["AP"]


def openvino_validation(manifest, val: str, val_images: str | None):
    """NNCF's accuracy-control inputs for the validation set: the items (COCO images), the transform that makes
    an item the model's input, and the metric: the COCO AP of a compiled OpenVINO model on a list of items,
    measured through the same Detector as `evaluate`."""
    from edgedet.data.coco import load_coco, require_annotations
    from edgedet.evaluation import evaluate_images
    from edgedet.preprocess import Preprocessor, read_image
    from edgedet.runtimes import Detector
    from edgedet.runtimes.openvino_runner import OpenVinoRunner

    ds = require_annotations(load_coco(val, val_images), "the accuracy gate")
    pre = Preprocessor(manifest.image_size, manifest.input.mean, manifest.input.std)

    def transform(item):
        return {manifest.input.name: pre([read_image(item.path)])[0].copy()}

    if manifest.input.normalize == "in_graph":
        from edgedet.errors import ConversionError

        raise ConversionError(
            "NNCF accuracy control needs the FP32 ONNX with float input (normalisation on the "
            "host), as calibration does"
        )

    def metric(compiled, items) -> float:
        det = Detector(OpenVinoRunner.from_compiled(compiled, manifest), manifest)
        return float(evaluate_images(det, ds, list(items))["AP"])

    return ds.images, transform, metric


def median_latency(entries: dict, frames: list, iters: int, rounds: int = 3) -> tuple[dict, dict]:
    """Median end-to-end ms of one Detector call on one frame, for each label -> (artifact, backend), measured in
    interleaved rounds in this one process, so that the ratios between them are comparable; and the precision
    each backend actually executed. Runtime defaults (what a user gets), so the executed precision is reported:
    OpenVINO may run FP32 artifacts in bf16 on CPUs that have it."""
    import time

    import numpy as np

    from edgedet.runtimes import Detector

    dets = {}
    try:
        for label, (path, backend) in entries.items():
            dets[label] = Detector.load(path, backend=backend)
            for f in frames[:3]:
                dets[label](f)  # warm-up
        times: dict[str, list[float]] = {k: [] for k in dets}
        per_round = max(1, iters // rounds)
        for _ in range(rounds):
            for label, det in dets.items():
                for f in frames[:2]:  # unmeasured: the previous backend's worker threads wind down meanwhile
                    det(f)
                for i in range(per_round):
                    t0 = time.perf_counter()
                    det(frames[i % len(frames)])
                    times[label].append((time.perf_counter() - t0) * 1e3)
        return (
            {k: float(np.median(v)) for k, v in times.items()},
            {k: det.runner.execution_precision for k, det in dets.items()},
        )
    finally:
        for det in dets.values():
            det.close()
