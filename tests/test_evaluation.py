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


# ---------------------------------------------------------------- hostile validation sets (issue 27)
def _write_set(tmp_path, anns, images=None):
    import cv2

    (tmp_path / "images").mkdir(exist_ok=True)
    images = images or [{"id": i, "file_name": f"{i}.png", "width": 200, "height": 200} for i in (1, 2, 3)]
    for im in images:
        if isinstance(im, dict) and isinstance(im.get("file_name"), str):
            cv2.imwrite(str(tmp_path / "images" / im["file_name"]), np.zeros((200, 200, 3), np.uint8))
    path = tmp_path / "ann.json"
    cats = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def test_eval_scores_the_cleaned_annotations_it_reports(tmp_path):
    """NaN boxes in the ground truth are dropped and reported, and the AP is the cleaned data's: the raw file
    was scored while the cleaned one was reported."""
    nan = float("nan")
    anns = [
        {"id": k + 1, "image_id": im, "category_id": c, "bbox": b, "area": 900.0, "iscrowd": 0}
        for k, (im, c, b) in enumerate(GT)
    ] + [
        {"id": 10, "image_id": 1, "category_id": 1, "bbox": [nan, 60, 30, 30], "area": 900.0, "iscrowd": 0},
        {"id": 11, "image_id": 2, "category_id": 2, "bbox": [120, 120, nan, 30], "area": 900.0, "iscrowd": 0},
    ]
    path = _write_set(tmp_path, anns)
    clean = tmp_path / "clean.json"
    data = json.loads(path.read_text())
    data["annotations"] = [a for a in data["annotations"] if a["id"] < 10]
    clean.write_text(json.dumps(data))
    results = _as_results(GT[:2]) + _as_results([(1, 1, [0, 55, 40, 40]), (2, 2, [115, 118, 40, 35])], shift=1)
    ours = evaluate_detector(_ResultsDetector(results), path)
    cleaned_ap, raw_ap = max(_reference(clean, results)[0], 0), max(_reference(path, results)[0], 0)
    assert abs(cleaned_ap - raw_ap) > 0.05  # the raw file scores otherwise
    assert ours["AP"] == pytest.approx(cleaned_ap, abs=1e-5), (ours["AP"], cleaned_ap, raw_ap)
    assert ours["problems"]["boxes with non-finite values dropped"] == 2


class _ResultsDetector:
    """Answers each image with the given COCO results (xywh -> xyxy), as a Detector would."""

    class_names = ["a", "b"]

    def __init__(self, results):
        self.results = results

    def __call__(self, image, score_threshold):
        from pathlib import Path

        iid = int(Path(image).stem)
        rows = [r for r in self.results if r["image_id"] == iid]
        xyxy = [[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in rows)]
        return Detections(
            np.array(xyxy, np.float32).reshape(-1, 4),
            np.array([r["score"] for r in rows], np.float32),
            [r["category_id"] - 1 for r in rows],
        )


@pytest.mark.parametrize(
    "anns",
    [
        [],
        [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 20], "iscrowd": 1}],  # all crowd
        [{"id": 1, "image_id": 99, "category_id": 1, "bbox": [5, 5, 20, 20]}],  # all image ids unknown
        [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [float("nan"), 5, 20, 20]}],  # nothing finite
    ],
    ids=["none", "all-crowd", "unknown-images", "all-nan"],
)
def test_eval_refuses_a_set_with_no_usable_annotations(tmp_path, anns):
    from edgedet.errors import InputError

    path = _write_set(tmp_path, anns)
    with pytest.raises(InputError, match="no usable annotations"):
        evaluate_detector(_ResultsDetector([]), path)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["annotations"][0].pop("bbox"), r"annotations\[0\] \(id 1\): missing key 'bbox'"),
        (lambda d: d["annotations"][0].pop("image_id"), r"annotations\[0\] \(id 1\): missing key 'image_id'"),
        (lambda d: d["images"][1].pop("file_name"), r"images\[1\] \(id 2\): missing key 'file_name'"),
        (lambda d: d["annotations"][1].update(bbox="10,10,5,5"), r"annotations\[1\] \(id 2\): key 'bbox' must be"),
        (lambda d: d["annotations"][1].update(bbox=[1, 2, 3]), r"annotations\[1\] \(id 2\): key 'bbox' must be"),
        (lambda d: d["annotations"][2].update(bbox=[1, "2", 3, 4]), r"annotations\[2\] \(id 3\): key 'bbox'"),
        (lambda d: d["images"][0].update(id="1"), r"images\[0\] \(id '1'\): key 'id' must be an integer"),
        (lambda d: d["annotations"].append(7), r"annotations\[4\] must be an object"),
        (lambda d: d.update(annotations={"a": 1}), r"key 'annotations' must be a list"),
    ],
)
def test_malformed_coco_is_one_line_naming_the_key_and_the_entry(dataset, change, message):
    from edgedet.errors import InputError

    data = json.loads(dataset.read_text())
    change(data)
    dataset.write_text(json.dumps(data))
    for call in (lambda: evaluate_detector(_ResultsDetector([]), dataset), lambda: coco_eval(dataset, [])):
        with pytest.raises(InputError, match=message) as e:
            call()
        assert "\n" not in str(e.value) and dataset.name in str(e.value)
