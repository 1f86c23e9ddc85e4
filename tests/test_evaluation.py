"""edgedet's COCO evaluation against pycocotools' own COCOeval on hand-made cases with known answers."""

import contextlib
import io
import json

import numpy as np
import pytest

pytest.importorskip("pycocotools")
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from edgedet.data.coco import load_coco
from edgedet.detections import Detections
from edgedet.evaluation import category_map, coco_eval, evaluate_detector

GT = [(1, 1, [10, 10, 50, 40]), (1, 2, [100, 80, 60, 60]), (2, 1, [30, 30, 80, 100]), (3, 2, [5, 5, 20, 20])]


@pytest.fixture
def dataset(tmp_path):
    import cv2

    (tmp_path / "images").mkdir()
    images = []
    for i in (1, 2, 3, 4):  # image 4 has no annotations
        cv2.imwrite(str(tmp_path / "images" / f"{i}.png"), np.zeros((200, 200, 3), np.uint8))
        images.append({"id": i, "file_name": f"{i}.png", "width": 200, "height": 200})
    anns = [
        {"id": k + 1, "image_id": im, "category_id": c, "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
        for k, (im, c, b) in enumerate(GT)
    ]
    path = tmp_path / "ann.json"
    path.write_text(
        json.dumps(
            {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}
        )
    )
    return path


def _reference(path, results):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(path))
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    return ev.stats


def _as_results(boxes, shift=0.0):
    return [
        {"image_id": im, "category_id": c, "bbox": [b[0] + shift, b[1], b[2], b[3]], "score": 0.9 - 0.1 * k}
        for k, (im, c, b) in enumerate(boxes)
    ]


def test_perfect_detections_give_ap_one(dataset):
    stats = coco_eval(dataset, _as_results(GT))
    assert stats["AP"] == pytest.approx(1.0) and stats["AP50"] == pytest.approx(1.0)


def test_shifted_boxes_match_pycocotools(dataset):
    res = _as_results(GT, shift=6.0)
    ours = coco_eval(dataset, res)
    ref = _reference(dataset, res)
    assert ours["AP"] == pytest.approx(ref[0], abs=1e-5) and ours["AP75"] == pytest.approx(ref[2], abs=1e-5)
    assert 0 < ours["AP"] < 1 and ours["AP50"] == pytest.approx(1.0)


def test_empty_results_give_zero(dataset):
    assert coco_eval(dataset, [])["AP"] == 0.0


class _FakeDetector:
    """Returns the ground truth of each image (in xyxy) as detections."""

    def __init__(self, path):
        self.class_names = ["a", "b"]
        meta = json.loads(path.read_text())
        self.files = {im["file_name"]: im["id"] for im in meta["images"]}

    def __call__(self, image, score_threshold):
        from pathlib import Path

        iid = self.files[Path(image).name]
        rows = [(c - 1, b) for im, c, b in GT if im == iid]
        xyxy = [[b[0], b[1], b[0] + b[2], b[1] + b[3]] for _, b in rows]
        return Detections(np.array(xyxy, np.float32).reshape(-1, 4), np.full(len(rows), 0.9), [c for c, _ in rows])


def test_evaluate_detector_end_to_end(dataset):
    stats = evaluate_detector(_FakeDetector(dataset), dataset)
    assert stats["AP"] == pytest.approx(1.0) and stats["images"] == 4


def test_category_map(dataset):
    ds = load_coco(dataset)
    assert category_map(2, ds) == [1, 2] and category_map(90, ds)[:2] == [1, 2]
    with pytest.raises(Exception, match="model has 5 classes"):
        category_map(5, ds)
