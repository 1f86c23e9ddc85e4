"""`edgedet eval`: COCO mAP of an artifact or model on a COCO-format dataset."""

from __future__ import annotations

from .common import add_nms_arguments, emit, nms_keywords, probability

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
    p.add_argument("--save-json", help="also write the detections as COCO results (results.json: pycocotools loadRes)")
    p.add_argument("--json", action="store_true")
    add_nms_arguments(p)


def run(a) -> int:
    from edgedet.evaluation import evaluate_detector, write_coco_results
    from edgedet.progress import progress

    from .common import load_detector

    if a.save_json:
        from edgedet.runtimes.sinks import check_writable

        check_writable(a.save_json, "--save-json")
    results = []
    with load_detector(a, **nms_keywords(a)) as det:
        stats = evaluate_detector(
            det,
            a.data,
            a.images,
            score_threshold=a.conf,
            progress=lambda it: progress(it, desc="eval"),
            results=results,
        )
        stats.update({"model": a.model, "backend": det.backend, "precision": det.manifest.precision})
    if a.save_json:
        stats["results_json"] = str(write_coco_results(a.save_json, results))
    text = (
        f"{a.model} [{stats['backend']} {stats['precision']}] on {stats['images']} images: "
        f"AP {stats['AP']:.4f}  AP50 {stats['AP50']:.4f}  AP75 {stats['AP75']:.4f}  "
        f"APs {stats['AP_small']:.4f}  APm {stats['AP_medium']:.4f}  APl {stats['AP_large']:.4f}"
    )
    if a.save_json:
        text += f"\nwrote {len(results)} detections (COCO results) to {a.save_json}"
    emit(stats, a.json, text)
    return 0
