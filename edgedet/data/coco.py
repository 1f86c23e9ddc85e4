"""COCO-format annotations: load, validate and repair what can be repaired, explain the rest.

Problems are collected, not raised one by one: missing image files, annotations of unknown images or
categories, zero-area boxes and boxes outside the image each get a count and examples; usable data is kept.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError


@dataclass
class CocoImage:
    id: int
    path: Path
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) xyxy float32, pixels
    labels: np.ndarray  # (N,) 0-based class index


@dataclass
class CocoDataset:
    annotation_file: Path
    images: list[CocoImage]
    category_ids: list[int]  # class index -> category id
    class_names: list[str]
    problems: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [
            f"{len(self.images)} images, {sum(len(i.boxes) for i in self.images)} boxes, "
            f"{len(self.category_ids)} classes"
        ]
        parts += [f"{k}: {len(v)} (e.g. {v[0]})" for k, v in self.problems.items() if v]
        return "; ".join(parts)


def _read(ann: Path) -> dict:
    if not ann.is_file():
        raise InputError(f"annotation file not found: {ann}")
    try:
        data = json.loads(ann.read_text())
    except ValueError as e:
        raise InputError(f"{ann} is not valid JSON: {e}") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("categories"), list)
    ):
        raise InputError(f"{ann} is not COCO format: needs 'images' and 'categories' lists")
    return data


def _boxes(anns: list, w: int, h: int, cat_index: dict, problems: dict):
    """One image's annotations -> (boxes xyxy, class indices); faults are recorded in problems."""
    boxes, labels = [], []
    for a in anns:
        if a.get("iscrowd", 0):
            continue
        if a.get("category_id") not in cat_index:
            problems["annotations of unknown categories"].append(f"id {a.get('id')} category {a.get('category_id')}")
            continue
        x, y, bw, bh = (float(v) for v in a["bbox"])
        x1, y1, x2, y2 = x, y, x + bw, y + bh
        if w and h:
            cx1, cy1, cx2, cy2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
            if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2):
                problems["boxes clipped to the image"].append(f"annotation {a.get('id')}")
            x1, y1, x2, y2 = cx1, cy1, cx2, cy2
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            problems["zero-area boxes dropped"].append(f"annotation {a.get('id')}")
            continue
        boxes.append((x1, y1, x2, y2))
        labels.append(cat_index[a["category_id"]])
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64)


def load_coco(annotations: str | Path, images_dir: str | Path | None = None, strict: bool = False) -> CocoDataset:
    ann = Path(annotations)
    data = _read(ann)
    root = Path(images_dir) if images_dir else ann.parent / "images"
    if not root.is_dir():
        raise InputError(f"images folder not found: {root}")
    cats = sorted(data["categories"], key=lambda c: c["id"])
    cat_index = {c["id"]: i for i, c in enumerate(cats)}
    problems: dict[str, list[str]] = {
        "missing image files": [],
        "annotations of unknown images": [],
        "annotations of unknown categories": [],
        "zero-area boxes dropped": [],
        "boxes clipped to the image": [],
    }
    by_image: dict[int, list] = {}
    for a in data.get("annotations", []):
        by_image.setdefault(a.get("image_id"), []).append(a)
    images, known = [], set()
    for im in data["images"]:
        known.add(im["id"])
        path = root / im["file_name"]
        if not path.is_file():
            problems["missing image files"].append(im["file_name"])
            continue
        w, h = int(im.get("width", 0)), int(im.get("height", 0))
        images.append(CocoImage(im["id"], path, w, h, *_boxes(by_image.get(im["id"], []), w, h, cat_index, problems)))
    problems["annotations of unknown images"] = [
        f"id {a.get('id')}" for iid, lst in by_image.items() if iid not in known for a in lst
    ]
    problems = {k: v for k, v in problems.items() if v}
    ds = CocoDataset(ann, images, [c["id"] for c in cats], [c.get("name", str(c["id"])) for c in cats], problems)
    if not images:
        raise InputError(f"no usable images in {ann}: " + ds.summary())
    if problems:
        msg = f"{ann.name}: " + ds.summary()
        if strict:
            raise InputError(msg)
        warnings.warn(msg, stacklevel=2)
    return ds
