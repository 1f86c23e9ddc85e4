"""COCO mAP of any backend's artifact through the Detector (pycocotools COCOeval, bbox).

The evaluation score threshold is low (0.001, as the TensorRT EfficientDet sample advises), separate from
the deploy threshold. Class index i maps to the i-th category id of the annotation file (sorted), or to
COCO id i + 1 for 90-class COCO models.
"""

from __future__ import annotations

import contextlib
import functools
import io
from pathlib import Path

import numpy as np

from .data.coco import CocoDataset, load_coco, require_annotations
from .errors import BackendUnavailableError, InputError

EVAL_SCORE_THRESHOLD = 0.001
STAT_NAMES = [
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
]


def category_map(num_classes: int, ds: CocoDataset) -> list[int]:
    if num_classes == len(ds.category_ids):
        return list(ds.category_ids)
    if num_classes == 90:
        return list(range(1, 91))
    raise InputError(
        f"model has {num_classes} classes but {ds.annotation_file.name} has {len(ds.category_ids)} "
        "categories: evaluate with a model trained on these categories"
    )


def coco_eval(annotation_file: str | Path, results: list[dict], image_ids: list[int] | None = None) -> dict:
    """COCOeval bbox stats for detection results [{image_id, category_id, bbox: [x, y, w, h], score}]."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as e:
        raise BackendUnavailableError("pycocotools", "eval", e) from e
    with contextlib.redirect_stdout(io.StringIO()):
        gt = _ground_truth(str(annotation_file), Path(annotation_file).stat().st_mtime_ns, COCO)
        if not results:
            return {k: 0.0 for k in STAT_NAMES} | {"num_detections": 0}
        dt = gt.loadRes([dict(r) for r in results])  # loadRes adds keys to the dicts it is given
        ev = COCOeval(gt, dt, "bbox")
        if image_ids is not None:
            ev.params.imgIds = list(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = {k: round(float(max(v, 0.0)), 5) for k, v in zip(STAT_NAMES, ev.stats)}
    stats["num_detections"] = len(results)
    return stats


@functools.lru_cache(maxsize=4)
def _ground_truth(path: str, mtime_ns: int, coco_cls):
    """The annotation file as scored: its cleaned annotations (edgedet.data.coco.ground_truth), the data that
    load_coco reports, never the raw file (a NaN box in it gave AP 0.947 where the cleaned data scores 0.676). Kept
    while the file is unchanged: evaluating many subsets of one set (NNCF's per-item accuracy control) parses it
    once. COCOeval only reads it."""
    from .data.coco import ground_truth

    gt = coco_cls()
    gt.dataset, _ = ground_truth(path)
    gt.createIndex()
    return gt


def coco_results(image_id: int, xyxy, scores, class_ids, category_ids: list[int]) -> list[dict]:
    """Detections of one image as COCO result entries (bbox as x, y, w, h)."""
    return [
        {
            "image_id": image_id,
            "category_id": category_ids[c],
            "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
            "score": round(s, 5),
        }
        for (x1, y1, x2, y2), s, c in zip(
            np.asarray(xyxy).tolist(), np.asarray(scores).tolist(), np.asarray(class_ids).tolist()
        )
    ]


def evaluate_detector(
    detector,
    annotation_file: str | Path,
    images_dir: str | Path | None = None,
    score_threshold: float = EVAL_SCORE_THRESHOLD,
    progress=None,
    results: list | None = None,
) -> dict:
    """COCO metrics of the detector on an annotated set; `results` (a list) receives the COCO result entries the
    metrics were computed from (write them with write_coco_results)."""
    ds = require_annotations(load_coco(annotation_file, images_dir), "evaluation")
    stats = evaluate_images(detector, ds, ds.images, score_threshold, progress, results)
    stats["problems"] = {k: len(v) for k, v in ds.problems.items()}  # what was dropped or repaired, scored as such
    return stats


def evaluate_images(
    detector,
    ds: CocoDataset,
    images: list,
    score_threshold: float = EVAL_SCORE_THRESHOLD,
    progress=None,
    results: list | None = None,
) -> dict:
    """COCO metrics of the detector on `images` (CocoImages of `ds`, all or a subset)."""
    cats = category_map(len(detector.class_names), ds)
    results = [] if results is None else results
    for im in progress(images) if progress else images:
        d = detector(str(im.path), score_threshold=score_threshold)
        results += coco_results(im.id, d.xyxy, d.scores, d.class_ids, cats)
    stats = coco_eval(ds.annotation_file, results, [im.id for im in images])
    stats["images"] = len(images)
    return stats


# ---------------------------------------------------------------------------------------------- COCO results
def write_coco_results(path: str | Path, results: list[dict]) -> Path:
    """The COCO results format (a JSON list of {image_id, category_id, bbox [x, y, w, h], score}), written
    atomically: pycocotools' COCO.loadRes reads it."""
    import json

    from .fileio import write_bytes_atomic

    path = Path(path)
    write_bytes_atomic(path, (json.dumps(results, separators=(",", ":")) + "\n").encode())
    return path


class CocoIds:
    """Image and category ids for detections written as COCO results. With an annotation file: the id of the image
    of that file name, and its categories (sorted; 90-class models: COCO ids). Without: the file stem when it is a
    number (COCO's own file names), else a running number; categories 1..C."""

    def __init__(self, num_classes: int, annotation_file: str | Path | None = None):
        self.by_name: dict[str, int] | None = None
        self.category_ids = list(range(1, num_classes + 1))
        self.unknown: list[str] = []
        self._next = 0
        if annotation_file is not None:
            from .data.coco import _read

            data = _read(Path(annotation_file))
            self.by_name = {}
            for im in data["images"]:
                if isinstance(im, dict) and "file_name" in im and "id" in im:
                    self.by_name[Path(str(im["file_name"])).name] = im["id"]
            cats = sorted(c["id"] for c in data["categories"] if isinstance(c, dict) and "id" in c)
            if num_classes == len(cats):
                self.category_ids = cats
            elif num_classes != 90:
                raise InputError(
                    f"model has {num_classes} classes but {Path(annotation_file).name} has {len(cats)} categories: "
                    "its category ids cannot be assigned"
                )

    def image_id(self, path: Path) -> int | None:
        """The image's id; None for an image the annotation file does not list (recorded in `unknown`)."""
        if self.by_name is not None:
            found = self.by_name.get(path.name)
            if found is None:
                self.unknown.append(path.name)
            return found
        self._next += 1
        return int(path.stem) if path.stem.isdigit() else self._next

    def results(self, path: Path, d) -> list[dict]:
        image_id = self.image_id(path)
        return [] if image_id is None else coco_results(image_id, d.xyxy, d.scores, d.class_ids, self.category_ids)
