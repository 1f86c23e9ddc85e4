"""COCO loading: missing images, unknown categories, empty images, degenerate boxes -> clear messages."""

import json

import cv2
import numpy as np
import pytest

from edgedet.data.coco import load_coco
from edgedet.errors import InputError


def _write(tmp_path, images, anns, cats=({"id": 1, "name": "a"},)):
    (tmp_path / "images").mkdir(exist_ok=True)
    for im in images:
        if not im.get("_missing"):
            cv2.imwrite(str(tmp_path / "images" / im["file_name"]), np.zeros((50, 60, 3), np.uint8))
    path = tmp_path / "ann.json"
    path.write_text(
        json.dumps(
            {
                "images": [{k: v for k, v in im.items() if k != "_missing"} for im in images],
                "annotations": anns,
                "categories": list(cats),
            }
        )
    )
    return path


def test_problems_are_reported_and_data_kept(tmp_path):
    images = [
        {"id": 1, "file_name": "a.png", "width": 60, "height": 50},
        {"id": 2, "file_name": "b.png", "width": 60, "height": 50},
        {"id": 3, "file_name": "gone.png", "width": 60, "height": 50, "_missing": True},
    ]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10]},
        {"id": 2, "image_id": 1, "category_id": 7, "bbox": [5, 5, 10, 10]},  # unknown category
        {"id": 3, "image_id": 1, "category_id": 1, "bbox": [5, 5, 0, 10]},  # zero area
        {"id": 4, "image_id": 1, "category_id": 1, "bbox": [50, 40, 30, 30]},  # out of bounds -> clipped
        {"id": 5, "image_id": 99, "category_id": 1, "bbox": [1, 1, 5, 5]},
    ]  # unknown image
    with pytest.warns(UserWarning) as w:
        ds = load_coco(_write(tmp_path, images, anns))
    msg = str(w[0].message)
    for text in (
        "missing image files: 1",
        "unknown categories: 1",
        "zero-area boxes dropped: 1",
        "boxes clipped to the image: 1",
        "annotations of unknown images: 1",
    ):
        assert text in msg
    assert [len(i.boxes) for i in ds.images] == [2, 0]  # image b.png kept with no boxes
    np.testing.assert_allclose(ds.images[0].boxes[1], [50, 40, 60, 50])


def test_unusable_inputs(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_coco(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(InputError, match="not valid JSON"):
        load_coco(tmp_path / "bad.json")
    (tmp_path / "x.json").write_text(json.dumps({"foo": 1}))
    with pytest.raises(InputError, match="not COCO format"):
        load_coco(tmp_path / "x.json")
    path = _write(tmp_path, [{"id": 1, "file_name": "z.png", "_missing": True}], [])
    with pytest.raises(InputError, match="no usable images"):
        load_coco(path)
