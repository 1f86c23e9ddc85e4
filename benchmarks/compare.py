"""`edgedet compare A B`: two deployments at the level of detections, with tolerances that set the exit code.

Each image goes through both Detectors at the deploy threshold less the slack, and the detections are matched per
image and class by IoU (edgedet.matching). With a COCO json, its images go through both at the evaluation threshold
(0.001) and give each side's AP through the same code as `edgedet eval` (so the AP here equals eval's, and for an
INT8 artifact and its FP32 source on OpenVINO at f32 the difference equals `calibrate`'s gate).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgedet.errors import InputError
from edgedet.evaluation import EVAL_SCORE_THRESHOLD, category_map, coco_eval, coco_results
from edgedet.matching import DEFAULT_IOU, DEFAULT_SLACK, match, summarize, worst

from .deployment import Deployment
from .environment import environment


@dataclass
class Tolerances:
    """Limits that fail the comparison (None: not checked)."""

    min_match: float | None = 0.95  # matched / (matched + missing + extra)
    max_ap_drop: float | None = 0.01  # AP(A) - AP(B), with a COCO json
    max_score_delta: float | None = None  # the largest |score(B) - score(A)| of a matched pair

    def checks(self, summary: dict, accuracy: dict | None) -> list[dict]:
        rows = [
            ("min_match", summary["match_rate"], self.min_match, lambda v, lim: v >= lim),
            ("max_score_delta", summary["score_delta"]["max"], self.max_score_delta, lambda v, lim: v <= lim),
        ]
        if accuracy is not None:
            rows.append(("max_ap_drop", accuracy["ap_drop"], self.max_ap_drop, lambda v, lim: v <= lim))
        return [
            {"check": name, "value": value, "limit": limit, "passed": bool(ok(value, limit))}
            for name, value, limit, ok in rows
            if limit is not None
        ]


@dataclass
class CompareRequest:
    a: Deployment
    b: Deployment
    source: str | None = None  # image file or folder to match on (default: the images of --data)
    data: str | None = None  # COCO json: AP of each side
    images: str | None = None  # its image folder (default: images/ beside it)
    conf: float = 0.25
    iou: float = DEFAULT_IOU
    slack: float = DEFAULT_SLACK
    device: str | None = None
    build: dict = field(default_factory=dict)  # weights / imgsz for model names
    tolerances: Tolerances = field(default_factory=Tolerances)
    worst: int = 5

    def validate(self) -> None:
        for name in ("conf", "iou", "slack"):
            if not 0 <= getattr(self, name) <= 1:
                raise InputError(f"--{name} must be in [0, 1]")
        t = self.tolerances
        for name in ("min_match", "max_ap_drop", "max_score_delta"):
            v = getattr(t, name)
            if v is not None and not 0 <= v <= 1:
                raise InputError(f"--{name.replace('_', '-')} must be in [0, 1]")
        if not self.source and not self.data:
            raise InputError("give --source IMAGES to match on, and/or --data ann.json for AP")


def _source_images(source: str) -> list[Path]:
    from edgedet.preprocess import list_images

    p = Path(source)
    if p.is_dir():
        files = list_images(p)
        if not files:
            raise InputError(f"no images in {p}")
        return files
    if p.is_file():
        return [p]
    raise InputError(f"--source {source}: no such image or folder")


def _side(det, dep: Deployment) -> dict:
    from edgedet.precision import artifact_identity

    m = det.manifest
    return {
        "deployment": dep.spelling,
        "backend": det.backend,
        "device": det.device,
        "built_precision": m.precision,
        "executed_precision": det.runner.execution_precision,
        **({"precision_note": det.runner.precision_note} if getattr(det.runner, "precision_note", "") else {}),
        "model": m.model["name"],
        "image_size": list(m.image_size),
        "artifact": m.artifact.file if m.artifact else None,
        "artifact_identity": artifact_identity(m),
    }


def _detect(dets: dict, paths: list[Path], threshold: float, progress) -> dict:
    """Detections of every image on every side at `threshold`."""
    out = {k: [] for k in dets}
    for p in progress(paths) if progress else paths:
        for k, det in dets.items():
            out[k].append(det(str(p), score_threshold=threshold))
    return out


def _counted_from(conf: float, a, b, caps: tuple[int, int]) -> float:
    """The score from which one image's detections are counted: the deploy threshold, or above the lowest score of
    a side that returned its maximum number of detections (max_det): below that cut its list was truncated, so a
    box only the other side has there is no disagreement."""
    cut = conf
    for d, cap in zip((a, b), caps):
        if len(d) >= cap:
            cut = max(cut, float(np.nextafter(np.float32(d.scores.min()), np.float32(1))))
    return cut


def _ap(dataset, detections: list, class_count: int) -> dict:
    cats = category_map(class_count, dataset)
    results = []
    for im, d in zip(dataset.images, detections):
        results += coco_results(im.id, d.xyxy, d.scores, d.class_ids, cats)
    stats = coco_eval(dataset.annotation_file, results, [im.id for im in dataset.images])
    return {"AP": stats["AP"], "AP50": stats["AP50"], "AP75": stats["AP75"]}


def compare(req: CompareRequest, progress=None) -> dict:
    req.validate()
    t0 = time.perf_counter()
    dataset = None
    if req.data:
        from edgedet.data.coco import load_coco

        dataset = load_coco(req.data, req.images)
        if not dataset.images:
            raise InputError(f"{req.data}: no usable images")
    paths = _source_images(req.source) if req.source else [im.path for im in dataset.images]
    dets = {}
    try:
        for key, dep in (("a", req.a), ("b", req.b)):
            dets[key] = dep.load(EVAL_SCORE_THRESHOLD, device=req.device, **req.build)
        a, b = dets["a"], dets["b"]
        if list(a.class_names) != list(b.class_names):
            raise InputError(
                f"A and B detect different classes ({len(a.class_names)}: {a.class_names[:3]}... vs "
                f"{len(b.class_names)}: {b.class_names[:3]}...): compare deployments of one model"
            )
        # matched at the deploy threshold less the slack: what a deployment returns (a pass at the evaluation
        # threshold would let the candidate cap, max_candidates, decide which near-threshold boxes exist)
        found = _detect(dets, paths, max(0.0, req.conf - req.slack), progress)
        accuracy = None
        if dataset is not None:
            on_data = _detect(dets, [im.path for im in dataset.images], EVAL_SCORE_THRESHOLD, progress)
            ap_a, ap_b = (_ap(dataset, on_data[k], len(a.class_names)) for k in ("a", "b"))
            accuracy = {
                "data": str(req.data),
                "images": len(dataset.images),
                "a": ap_a,
                "b": ap_b,
                "ap_drop": round(ap_a["AP"] - ap_b["AP"], 5),
            }
        sides = {k: _side(d, dep) for (k, d), dep in zip(dets.items(), (req.a, req.b))}
        dets_cap = {k: int(d.manifest.postprocess.max_det) for k, d in dets.items()}
    finally:
        for d in dets.values():
            d.close()
    caps = (dets_cap["a"], dets_cap["b"])
    floors = [_counted_from(req.conf, x, y, caps) for x, y in zip(found["a"], found["b"])]
    matches = [match(x, y, f, req.iou, req.slack) for x, y, f in zip(found["a"], found["b"], floors)]
    summary = summarize(matches)
    summary["images_at_max_det"] = sum(f > req.conf for f in floors)
    checks = req.tolerances.checks(summary, accuracy)
    env = environment()
    return {
        "a": sides["a"],
        "b": sides["b"],
        "source": str(req.source) if req.source else str(req.data),
        "conf": req.conf,
        "iou": req.iou,
        "slack": req.slack,
        "match": summary,
        "worst_images": worst(matches, [str(p) for p in paths], req.worst),
        "accuracy": accuracy,
        "checks": checks,
        "passed": all(c["passed"] for c in checks),
        "environment": {"cpu": env["cpu"], "cpu_flags": env["cpu_flags"], "versions": env["versions"]},
        "seconds": round(time.perf_counter() - t0, 1),
    }


def text(report: dict) -> str:
    """The human summary of a comparison."""
    m, a, b = report["match"], report["a"], report["b"]
    lines = [
        f"A: {a['deployment']}  [{a['backend']} on {a['device']}, built {a['built_precision']}, runs "
        f"{a['executed_precision']}]",
        f"B: {b['deployment']}  [{b['backend']} on {b['device']}, built {b['built_precision']}, runs "
        f"{b['executed_precision']}]",
        f"{m['images']} images, deploy threshold {report['conf']} (slack {report['slack']}), IoU >= {report['iou']}: "
        f"{m['matched']} matched, {m['missing']} missing in B, {m['extra']} extra in B "
        f"(match rate {m['match_rate']:.4f})",
        f"|score delta| p50 {m['score_delta']['p50']:.2e}  p99 {m['score_delta']['p99']:.2e}  max "
        f"{m['score_delta']['max']:.2e} (mean shift B-A {m['score_shift_mean']:+.2e}); 1-IoU p50 "
        f"{m['iou_delta']['p50']:.2e}  p99 {m['iou_delta']['p99']:.2e}  max {m['iou_delta']['max']:.2e}",
    ]
    acc = report.get("accuracy")
    if acc:
        lines.append(
            f"AP on {acc['images']} images of {Path(acc['data']).name}: A {acc['a']['AP']:.4f}  B {acc['b']['AP']:.4f}"
            f"  (A - B {acc['ap_drop']:+.4f}); AP50 A {acc['a']['AP50']:.4f}  B {acc['b']['AP50']:.4f}"
        )
    for w in report["worst_images"]:
        lines.append(
            f"  worst: {Path(w['image']).name}: {w['missing']} missing, {w['extra']} extra, max |score delta| "
            f"{w['max_score_delta']:.2e}, min IoU {w['min_iou']:.3f}"
        )
    for c in report["checks"]:
        lines.append(f"{'PASS' if c['passed'] else 'FAIL'} {c['check']}: {c['value']} (limit {c['limit']})")
    lines.append("PASSED" if report["passed"] else "FAILED: B differs from A beyond the tolerances")
    return "\n".join(lines)
