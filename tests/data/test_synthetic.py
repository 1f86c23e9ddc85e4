"""The synthetic dataset is deterministic from its seed and its boxes enclose the drawn objects."""

import json

import cv2

from edgedet.data.synthetic import CLASSES, generate


def test_deterministic_and_valid(tmp_path):
    a = generate(tmp_path / "a", "val", 6, size=128, seed=3)
    b = generate(tmp_path / "b", "val", 6, size=128, seed=3)
    c = generate(tmp_path / "c", "val", 6, size=128, seed=4)
    ja, jb, jc = (json.loads(p.read_text()) for p in (a, b, c))
    assert ja["annotations"] == jb["annotations"] and ja["annotations"] != jc["annotations"]
    for f in ("val_00000.jpg", "val_00005.jpg"):
        assert (tmp_path / "a/images" / f).read_bytes() == (tmp_path / "b/images" / f).read_bytes()
    assert [c["name"] for c in ja["categories"]] == CLASSES
    assert ja["annotations"]
    for ann in ja["annotations"]:
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 128 and y + h <= 128
        assert 1 <= ann["category_id"] <= len(CLASSES)
    assert cv2.imread(str(tmp_path / "a/images/val_00000.jpg")).shape == (128, 128, 3)


def test_tiles_keep_object_pixel_sizes(tmp_path):
    """2 x 2 tiles of 64 px scenes: a 128 px image whose boxes lie inside their own tile (so objects keep the
    pixel sizes of 64 px scenes), spread over every tile."""
    p = generate(tmp_path / "t", "val", 4, size=64, seed=1, tiles=2)
    js = json.loads(p.read_text())
    assert all((im["width"], im["height"]) == (128, 128) for im in js["images"])
    assert cv2.imread(str(tmp_path / "t/images/val_00000.jpg")).shape == (128, 128, 3)
    tiles = set()
    for ann in js["annotations"]:
        x, y, w, h = ann["bbox"]
        tx, ty = int(x // 64), int(y // 64)
        assert x + w <= (tx + 1) * 64 and y + h <= (ty + 1) * 64
        tiles.add((tx, ty))
    assert tiles == {(0, 0), (0, 1), (1, 0), (1, 1)}
