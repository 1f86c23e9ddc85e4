"""`edgedet eval`: COCO mAP of an artifact or model on a COCO-format dataset."""

from __future__ import annotations

from .common import emit, probability

HELP = "COCO mAP of an artifact or model on a COCO-format dataset"


def add_arguments(p):
    p.add_argument("--model", required=True, help="artifact (.onnx, .xml, .pth, .engine) or model name")
    p.add_argument("--weights", help="weights for a model name")
    p.add_argument("--imgsz", type=int, help="input size for a model name")
    p.add_argument("--data", required=True, help="COCO annotation json")
    p.add_argument("--images", help="image folder (default: images/ beside the json)")
    p.add_argument("--backend")
    p.add_argument("--device")
    p.add_argument(
        "--conf", type=probability, default=0.001, help="evaluation score threshold (low, not the deploy one)"
    )
    p.add_argument("--json", action="store_true")


def run(a) -> int:
    from edgedet.evaluation import evaluate_detector
    from edgedet.progress import progress

    from .common import load_detector

    with load_detector(a) as det:
        stats = evaluate_detector(
            det, a.data, a.images, score_threshold=a.conf, progress=lambda it: progress(it, desc="eval")
        )
        stats.update({"model": a.model, "backend": det.backend, "precision": det.manifest.precision})
    text = (
        f"{a.model} [{stats['backend']} {stats['precision']}] on {stats['images']} images: "
        f"AP {stats['AP']:.4f}  AP50 {stats['AP50']:.4f}  AP75 {stats['AP75']:.4f}  "
        f"APs {stats['AP_small']:.4f}  APm {stats['AP_medium']:.4f}  APl {stats['AP_large']:.4f}"
    )
    emit(stats, a.json, text)
    return 0
