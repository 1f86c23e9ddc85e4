"""A synthetic detection dataset in COCO format, deterministic from a seed.

Objects of five classes (circle, square, triangle, cross, ring) are rendered with varied size, aspect,
colour, rotation, partial occlusion (later objects may cover earlier ones; boxes of objects covered too
much are dropped) and blur onto crops of real photographs shipped with scikit-image (generated textures
where it is absent). `python -m edgedet.data.synthetic OUT --train 800 --val 200 --size 256`.

`--tiles N` puts N x N such scenes side by side in one image (N*size pixels square): objects keep the pixel sizes
of `size`, which is how a model trained at 256 px is checked at 512 px (`--size 256 --tiles 2`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from ..fileio import write_json_atomic

CLASSES = ["circle", "square", "triangle", "cross", "ring"]
_PHOTOS = [
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "coins",
    "moon",
    "page",
    "text",
    "brick",
    "grass",
    "gravel",
    "colorwheel",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "motorcycle_left",
]


def _backgrounds() -> list[np.ndarray]:
    out = []
    try:
        from skimage import data

        for name in _PHOTOS:
            fn = getattr(data, name, None)
            if fn is None:
                continue
            try:
                img = fn()
            except Exception:  # some datasets need optional downloads (pooch): skip them offline
                continue
            if img.ndim == 2:
                img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
            if img.dtype != np.uint8 or img.shape[2] != 3:
                continue
            out.append(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    except ImportError:
        pass
    return out


def _texture(rng, size) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    img = np.zeros((size, size, 3), np.float32)
    for c in range(3):
        fx, fy, ph = rng.uniform(0.01, 0.2, 2).tolist() + [rng.uniform(0, 6.28)]
        img[..., c] = 127 + 80 * np.sin(fx * x + ph) * np.cos(fy * y)
    img += rng.normal(0, 15, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _background(rng, bgs, size) -> np.ndarray:
    if not bgs or rng.random() < 0.15:
        return _texture(rng, size)
    src = bgs[rng.integers(len(bgs))]
    h, w = src.shape[:2]
    crop = int(rng.uniform(0.4, 1.0) * min(h, w))
    y0, x0 = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
    img = cv2.resize(src[y0 : y0 + crop, x0 : x0 + crop], (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img[:, ::-1] if rng.random() < 0.5 else img)


def _draw(mask: np.ndarray, cls: int, cx: float, cy: float, rw: float, rh: float, angle: float) -> None:
    """Draw the filled shape of class cls into mask (uint8, 255 = object)."""
    rot = cv2.getRotationMatrix2D((0, 0), angle, 1.0)[:, :2]

    def pts(p):
        return (np.asarray(p, np.float32) @ rot.T + [cx, cy]).astype(np.int32)

    if cls == 0:
        cv2.ellipse(mask, (int(cx), int(cy)), (int(rw), int(rh)), angle, 0, 360, 255, -1)
    elif cls == 1:
        cv2.fillPoly(mask, [pts([(-rw, -rh), (rw, -rh), (rw, rh), (-rw, rh)])], 255)
    elif cls == 2:
        cv2.fillPoly(mask, [pts([(0, -rh), (rw, rh), (-rw, rh)])], 255)
    elif cls == 3:
        t = 0.33
        cv2.fillPoly(mask, [pts([(-rw, -rh * t), (rw, -rh * t), (rw, rh * t), (-rw, rh * t)])], 255)
        cv2.fillPoly(mask, [pts([(-rw * t, -rh), (rw * t, -rh), (rw * t, rh), (-rw * t, rh)])], 255)
    else:
        cv2.ellipse(mask, (int(cx), int(cy)), (int(rw), int(rh)), angle, 0, 360, 255, -1)
        cv2.ellipse(mask, (int(cx), int(cy)), (max(1, int(rw * 0.55)), max(1, int(rh * 0.55))), angle, 0, 360, 0, -1)


def render_image(rng, bgs, size: int, max_objects: int = 6):
    img = _background(rng, bgs, size).astype(np.float32)
    masks, classes = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        cls = int(rng.integers(len(CLASSES)))
        r = rng.uniform(0.05, 0.25) * size
        rw, rh = r * rng.uniform(0.7, 1.3), r * rng.uniform(0.7, 1.3)
        cx, cy = rng.uniform(0, size), rng.uniform(0, size)
        mask = np.zeros((size, size), np.uint8)
        _draw(mask, cls, cx, cy, rw, rh, float(rng.uniform(0, 360)) if cls != 0 else 0.0)
        if mask.sum() < 255 * 30:
            continue
        color = rng.uniform(0, 255, 3)
        shade = (0.75 + 0.25 * rng.random((size, size, 1))).astype(np.float32)
        alpha = (mask.astype(np.float32) / 255.0)[..., None]
        img = img * (1 - alpha) + alpha * color * shade
        for m in masks:  # occlusion: later objects cover earlier ones
            m[mask > 0] = 0
        masks.append(mask)
        classes.append(cls)
    if rng.random() < 0.4:
        k = int(rng.choice([3, 5]))
        img = cv2.GaussianBlur(img, (k, k), 0)
    img = np.clip(img + rng.normal(0, rng.uniform(0, 8), img.shape), 0, 255).astype(np.uint8)
    anns = []
    for m, cls in zip(masks, classes):
        ys, xs = np.nonzero(m)
        if len(xs) < 30:
            continue  # (nearly) fully occluded
        x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        anns.append((cls, [float(x1), float(y1), float(x2 - x1), float(y2 - y1)], float(len(xs))))
    return img, anns


def render_tiled(rng, bgs, size: int, tiles: int):
    """tiles x tiles scenes of `size` px in one image; their boxes shifted to where each scene sits."""
    img = np.empty((size * tiles, size * tiles, 3), np.uint8)
    anns = []
    for ty in range(tiles):
        for tx in range(tiles):
            img[ty * size : (ty + 1) * size, tx * size : (tx + 1) * size], tile = render_image(rng, bgs, size)
            anns += [(cls, [x + tx * size, y + ty * size, w, h], area) for cls, (x, y, w, h), area in tile]
    return img, anns


def generate(out_dir: str | Path, split: str, count: int, size: int = 256, seed: int = 0, tiles: int = 1) -> Path:
    """Write out_dir/images/{split}_NNNNN.jpg and out_dir/{split}.json; returns the json path."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, {"train": 0, "val": 1, "test": 2}.get(split, 3)])
    bgs = _backgrounds()
    images, annotations = [], []
    for i in range(count):
        img, anns = render_image(rng, bgs, size) if tiles == 1 else render_tiled(rng, bgs, size, tiles)
        name = f"{split}_{i:05d}.jpg"
        cv2.imwrite(str(out / "images" / name), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        images.append({"id": i + 1, "file_name": name, "width": img.shape[1], "height": img.shape[0]})
        for cls, bbox, area in anns:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": cls + 1,
                    "bbox": bbox,
                    "area": area,
                    "iscrowd": 0,
                }
            )
    layout = f"{size}px" if tiles == 1 else f"{tiles}x{tiles} tiles of {size}px"
    meta = {
        "info": {"description": f"edgedet synthetic shapes, split {split}, seed {seed}, {layout}"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)],
    }
    path = out / f"{split}.json"
    write_json_atomic(path, meta)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Generate the synthetic shapes detection dataset (COCO format).")
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=800)
    ap.add_argument("--val", type=int, default=200)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiles", type=int, default=1, help="N x N scenes per image (objects keep their pixel sizes)")
    a = ap.parse_args(argv)
    if a.tiles < 1 or a.size < 32:
        ap.error("--tiles must be >= 1 and --size >= 32")
    for split, n in (("train", a.train), ("val", a.val)):
        if n > 0:
            print(generate(a.out, split, n, a.size, a.seed, a.tiles))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
