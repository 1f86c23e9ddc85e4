"""`edgedet compare A B`: two deployments at the level of detections; tolerances set the exit code (1: over them)."""

from __future__ import annotations

from .common import emit, positive, probability

HELP = (
    "compare two deployments detection by detection (matches, score/IoU deltas, AP difference); exit 1 over tolerance"
)

SPELLING = (
    "SOURCE[@BACKEND[:PRECISION][,OPTION=VALUE...]]: an artifact, a model name (with --weights/--imgsz) or a server "
    "URL; BACKEND one of {backends}; PRECISION the one it executes (f32 | bf16 | f16; f32 = no reduced-precision "
    "hints); e.g. d0.xml@openvino:bf16, d0.onnx@onnxruntime, d0.xml@openvino:f32,threads=1"
)


def _none_or(kind):
    def parse(value: str):
        return None if value.lower() in ("none", "off") else kind(value)

    return parse


def add_arguments(p):
    from edgedet.registry import BACKENDS

    from .common import names

    spelling = SPELLING.format(backends=names(BACKENDS.values()))
    p.add_argument("a", metavar="A", help=f"the reference deployment: {spelling}")
    p.add_argument("b", metavar="B", help="the deployment checked against A (same spelling)")
    p.add_argument("--source", help="image file or folder to match on (default: the images of --data)")
    p.add_argument("--data", help="COCO json: the AP of A and of B on it, and the difference")
    p.add_argument("--images", help="image folder of --data (default: images/ beside it)")
    p.add_argument("--weights", help="weights for model names")
    p.add_argument("--imgsz", type=positive, help="input size for model names")
    p.add_argument("--device", help="cpu / cuda / cuda:N / gpu")
    p.add_argument("--conf", type=probability, default=0.25, help="deploy score threshold matches are counted at")
    p.add_argument("--iou", type=probability, default=0.5, help="IoU a pair needs to match")
    p.add_argument(
        "--slack",
        type=probability,
        default=0.05,
        help="a detection at --conf still matches one down to conf - slack on the other side (a moved score, "
        "not a lost object)",
    )
    g = p.add_argument_group("tolerances (exceeded: exit 1; 'none' turns one off)")
    g.add_argument("--min-match", type=_none_or(probability), default=0.95, help="matched / all counted (0.95)")
    g.add_argument("--max-ap-drop", type=_none_or(probability), default=0.01, help="AP(A) - AP(B), needs --data (0.01)")
    g.add_argument(
        "--max-score-delta", type=_none_or(probability), default=None, help="largest |score change| of a matched pair"
    )
    p.add_argument("--worst", type=positive, default=5, help="how many of the most different images to list")
    p.add_argument("--out", help="also write the JSON report to this file")
    p.add_argument("--json", action="store_true", help="print only the JSON report")


def run(a) -> int:
    from edgedet.benchmarks.compare import CompareRequest, Tolerances, compare, text
    from edgedet.benchmarks.deployment import Deployment
    from edgedet.fileio import write_json_atomic
    from edgedet.progress import progress

    req = CompareRequest(
        a=Deployment.parse(a.a),
        b=Deployment.parse(a.b),
        source=a.source,
        data=a.data,
        images=a.images,
        conf=a.conf,
        iou=a.iou,
        slack=a.slack,
        device=a.device,
        build={k: v for k, v in (("weights", a.weights), ("imgsz", a.imgsz)) if v},
        tolerances=Tolerances(a.min_match, a.max_ap_drop, a.max_score_delta),
        worst=a.worst,
    )
    report = compare(req, progress=lambda it: progress(it, desc="compare", disable=a.json))
    if a.out:
        write_json_atomic(a.out, report)
    emit(report, a.json, text(report))
    return 0 if report["passed"] else 1
