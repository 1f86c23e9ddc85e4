"""Images for end-to-end timing: a user folder, else real photographs shipped with scikit-image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgedet.errors import InputError
from edgedet.preprocess import list_images, read_image


def sample_images(data: str | Path | None = None, limit: int = 16) -> list[np.ndarray]:
    if data is not None:
        p = Path(data)
        files = list_images(p) if p.is_dir() else _coco_images(p)
        if not files:
            raise InputError(f"no images found in {data}")
        return [read_image(f) for f in files[:limit]]
    try:
        import cv2
        from skimage import data as skdata

        photos = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket()]
        return [cv2.cvtColor(p, cv2.COLOR_RGB2BGR) for p in photos]
    except ImportError:  # a deterministic textured image when scikit-image is absent
        rng = np.random.default_rng(0)
        y, x = np.mgrid[0:480, 0:640]
        base = ((np.sin(x / 23.0) + np.cos(y / 17.0)) * 60 + 128)[..., None].repeat(3, 2)
        return [np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)]


def _coco_images(ann: Path) -> list[Path]:
    import json

    if not ann.is_file():
        raise InputError(f"--data {ann}: not a folder or annotation file")
    meta = json.loads(ann.read_text())
    root = ann.parent / "images"
    return [root / im["file_name"] for im in meta.get("images", []) if (root / im["file_name"]).is_file()]


def make_video(path: Path, frames: int, size=(1280, 720), fps: int = 30, fourcc: str = "mp4v") -> Path:
    """Photographs panned across the frame with moving coloured shapes: real decode and encode work."""
    w, h = size
    photos = [cv2.resize(p, (w * 2, h)) for p in sample_images()]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path}")
    for i in range(frames):
        x = (i * 5) % w
        frame = np.ascontiguousarray(photos[(i // 60) % len(photos)][:, x : x + w])
        cx, cy = int(w / 2 + w / 3 * np.sin(i / 20)), int(h / 2 + h / 3 * np.cos(i / 25))
        cv2.circle(frame, (cx, cy), h // 8, (0, 0, 255), -1)
        cv2.rectangle(frame, (w - cx - 60, h - cy - 40), (w - cx + 60, h - cy + 40), (255, 128, 0), -1)
        writer.write(frame)
    writer.release()
    return path
