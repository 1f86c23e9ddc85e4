"""COCO-format annotations: load, validate and repair what can be repaired, explain the rest.

Problems are collected, not raised one by one: missing image files, annotations of unknown images or
categories, boxes with non-finite values, zero-area boxes and boxes outside the image each get a count and
examples; usable data is kept. Malformed entries (a missing or wrongly typed key a loader relies on) are one
InputError naming the key and the entry. `ground_truth` is the same cleaned data as a COCO dict, for scoring.
"""

from __future__ import annotations

import json
import math
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
    except (ValueError, RecursionError) as e:
        raise InputError(f"{ann} is not valid JSON: {str(e)[:200]}") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("categories"), list)
    ):
        raise InputError(f"{ann} is not COCO format: needs 'images' and 'categories' lists")
    if not isinstance(data.get("annotations", []), list):
        raise InputError(f"{ann}: key 'annotations' must be a list, got {type(data['annotations']).__name__}")
    _check_entries(data, ann.name)
    return data


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# the keys of each COCO entry that loading relies on: (key, required, check, what it must be)
_ENTRY_KEYS = {
    "images": [
        ("id", True, _is_int, "an integer"),
        ("file_name", True, lambda v: isinstance(v, str) and v != "", "a file name"),
        ("width", False, lambda v: _is_number(v) and v >= 0, "a number >= 0"),
        ("height", False, lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    ],
    "categories": [
        ("id", True, _is_int, "an integer"),
        ("name", False, lambda v: isinstance(v, str), "a string"),
    ],
    "annotations": [
        ("image_id", True, _is_int, "an integer"),
        ("category_id", True, _is_int, "an integer"),
        (
            "bbox",
            True,
            lambda v: isinstance(v, list) and len(v) == 4 and all(_is_number(x) for x in v),
            "[x, y, width, height] numbers",
        ),
        ("iscrowd", False, lambda v: v in (0, 1), "0 or 1"),
        ("area", False, _is_number, "a number"),
    ],
}


def _check_entries(data: dict, name: str) -> None:
    """Every entry is an object with the keys loading relies on, of the right types: else one line naming the
    section, the entry (its index and id) and the key. Non-finite box values are not errors here: such boxes are
    dropped and counted, as other unusable boxes are."""
    for section, keys in _ENTRY_KEYS.items():
        for i, entry in enumerate(data.get(section, [])):
            where = f"{name}: {section}[{i}]"
            if not isinstance(entry, dict):
                raise InputError(f"{where} must be an object, got {type(entry).__name__}")
            where += f" (id {entry['id']!r:.40})" if "id" in entry else ""
            for key, required, ok, what in keys:
                if key not in entry:
                    if required:
                        raise InputError(f"{where}: missing key '{key}'")
                    continue
                if not ok(entry[key]):
                    raise InputError(f"{where}: key '{key}' must be {what}, got {entry[key]!r:.60}")
    ids = [im["id"] for im in data["images"]]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"{name}: image id {dup} appears twice in 'images'")


def _clean_box(a: dict, w: float, h: float, problems: dict) -> tuple | None:
    """An annotation's box as xyxy clipped to the image, or None (dropped, counted) when it is unusable."""
    x, y, bw, bh = (float(v) for v in a["bbox"])
    if not all(math.isfinite(v) for v in (x, y, bw, bh)):
        problems["boxes with non-finite values dropped"].append(f"annotation {a.get('id')}")
        return None
    x1, y1, x2, y2 = x, y, x + bw, y + bh
    if w and h:
        cx1, cy1, cx2, cy2 = max(0.0, x1), max(0.0, y1), min(w, x2), min(h, y2)
        if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2):
            problems["boxes clipped to the image"].append(f"annotation {a.get('id')}")
        x1, y1, x2, y2 = cx1, cy1, cx2, cy2
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        problems["zero-area boxes dropped"].append(f"annotation {a.get('id')}")
        return None
    return x1, y1, x2, y2


def _boxes(anns: list, w: int, h: int, cat_index: dict, problems: dict):
    """One image's annotations -> (boxes xyxy, class indices); faults are recorded in problems."""
    boxes, labels = [], []
    for a in anns:
        if a.get("iscrowd", 0):
            continue
        if a["category_id"] not in cat_index:
            problems["annotations of unknown categories"].append(f"id {a.get('id')} category {a['category_id']}")
            continue
        box = _clean_box(a, w, h, problems)
        if box is None:
            continue
        boxes.append(box)
        labels.append(cat_index[a["category_id"]])
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64)


def _problem_lists() -> dict[str, list[str]]:
    return {
        "missing image files": [],
        "annotations of unknown images": [],
        "annotations of unknown categories": [],
        "boxes with non-finite values dropped": [],
        "zero-area boxes dropped": [],
        "boxes clipped to the image": [],
    }


def ground_truth(annotations: str | Path) -> tuple[dict, dict[str, list[str]]]:
    """The annotation file as it is scored: a COCO dict of the cleaned annotations (the boxes load_coco keeps,
    clipped as it clips them; crowd regions kept as crowd, which COCOeval ignores; fresh unique annotation ids)
    and what was dropped. COCOeval on this, not on the raw file, scores exactly the data that is reported."""
    ann = Path(annotations)
    data = _read(ann)
    problems = _problem_lists()
    cats = {c["id"] for c in data["categories"]}
    images = {im["id"]: im for im in data["images"]}
    kept = []
    for a in data.get("annotations", []):
        im = images.get(a["image_id"])
        if im is None:
            problems["annotations of unknown images"].append(f"id {a.get('id')}")
            continue
        if a["category_id"] not in cats:
            problems["annotations of unknown categories"].append(f"id {a.get('id')} category {a['category_id']}")
            continue
        box = _clean_box(a, float(im.get("width", 0)), float(im.get("height", 0)), problems)
        if box is None:
            continue
        x1, y1, x2, y2 = box
        area = (x2 - x1) * (y2 - y1)
        given = a.get("area")
        unclipped = [x1, y1, x2 - x1, y2 - y1] == [float(v) for v in a["bbox"]]
        if unclipped and given is not None and math.isfinite(given) and given > 0:
            area = float(given)
        kept.append(
            {
                "id": len(kept) + 1,
                "image_id": a["image_id"],
                "category_id": a["category_id"],
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": area,
                "iscrowd": int(a.get("iscrowd", 0)),
            }
        )
    clean = {
        "images": [{"id": im["id"], **{k: im[k] for k in ("width", "height") if k in im}} for im in data["images"]],
        "annotations": kept,
        "categories": [{"id": c["id"], "name": c.get("name", str(c["id"]))} for c in data["categories"]],
    }
    return clean, {k: v for k, v in problems.items() if v}


def usable_annotations(ds: "CocoDataset") -> int:
    """Boxes a metric can be measured on: non-crowd, of known images and categories, finite, of positive area."""
    return sum(len(im.boxes) for im in ds.images)


def require_annotations(ds: "CocoDataset", what: str = "a validation set") -> "CocoDataset":
    """InputError when `ds` has no usable annotation: a metric on it would be 0 (or a gate pass) on nothing."""
    if usable_annotations(ds) == 0:
        raise InputError(
            f"{ds.annotation_file.name} has no usable annotations for {what} ({ds.summary()}): an AP measured on "
            "it would mean nothing; give annotations (non-crowd boxes of its images and categories)"
        )
    return ds


def load_coco(annotations: str | Path, images_dir: str | Path | None = None, strict: bool = False) -> CocoDataset:
    ann = Path(annotations)
    data = _read(ann)
    root = Path(images_dir) if images_dir else ann.parent / "images"
    if not root.is_dir():
        raise InputError(f"images folder not found: {root}")
    cats = sorted(data["categories"], key=lambda c: c["id"])
    cat_index = {c["id"]: i for i, c in enumerate(cats)}
    problems = _problem_lists()
    by_image: dict[int, list] = {}
    for a in data.get("annotations", []):
        by_image.setdefault(a["image_id"], []).append(a)
    images, known = [], set()
    for im in data["images"]:
        known.add(im["id"])
        path = root / im["file_name"]
        if not path.is_file():
            problems["missing image files"].append(im["file_name"])
            continue
        w, h = float(im.get("width", 0)), float(im.get("height", 0))
        boxes = _boxes(by_image.get(im["id"], []), w, h, cat_index, problems)
        images.append(CocoImage(im["id"], path, int(w), int(h), *boxes))
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
