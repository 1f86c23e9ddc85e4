"""Calibration data: an image folder, a video (every k-th frame) or a COCO json, sampled deterministically and
preprocessed exactly as at deploy time (the artifact manifest's letterbox, mean/std). The hash of the chosen
files (names and bytes) identifies the set in manifests and range caches."""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgedet.errors import InputError
from edgedet.preprocess import IMAGE_SUFFIXES, Preprocessor, read_image

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
TINY = 50


@dataclass
class CalibrationSet:
    frames: list[np.ndarray]  # uint8 BGR
    sources: list[str]
    data_hash: str
    warnings: list[str] = field(default_factory=list)

    def tensors(self, image_size, mean, std) -> list[np.ndarray]:
        pre = Preprocessor(image_size, mean, std)
        return [pre([f])[0].copy() for f in self.frames]


def _pick(items: list, num: int) -> list:
    if len(items) <= num:
        return items
    idx = np.linspace(0, len(items) - 1, num).round().astype(int)
    return [items[i] for i in idx]


def load_calibration(
    source: str | Path,
    num: int = 300,
    every: int | None = None,
    input_size: tuple[int, int] | None = None,
    num_classes: int | None = None,
) -> CalibrationSet:
    src = Path(source)
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"calibration folder {src} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        cal = _from_files(_pick(files, num))
    elif src.suffix.lower() in VIDEO_SUFFIXES:
        cal = _from_video(src, num, every)
    elif src.suffix.lower() == ".json":
        cal = _from_coco(src, num, num_classes)
    else:
        raise InputError(
            f"calibration source {src} is not a folder, a video ({', '.join(sorted(VIDEO_SUFFIXES))}) or a COCO json"
        )
    if len(cal.frames) < TINY:
        cal.warnings.append(
            f"only {len(cal.frames)} calibration images (recommended: 300); ranges may not represent your cameras"
        )
    if input_size is not None:
        small = sum(1 for f in cal.frames if max(f.shape[0] / input_size[0], f.shape[1] / input_size[1]) < 0.5)
        if small > len(cal.frames) // 2:
            cal.warnings.append(
                f"{small} of {len(cal.frames)} calibration images are less than half the network "
                f"input ({input_size[1]}x{input_size[0]}): upscaled frames calibrate differently"
            )
        sizes = {f.shape[:2] for f in cal.frames}
        if len(sizes) > 1:
            cal.warnings.append(
                f"calibration images come in {len(sizes)} resolutions; deploy-time frames should look like them"
            )
    for w in cal.warnings:
        warnings.warn(w, stacklevel=2)
    return cal


def _hash(names_and_bytes) -> str:
    h = hashlib.sha256()
    for name, data in names_and_bytes:
        h.update(name.encode())
        h.update(hashlib.sha256(data).digest())
    return h.hexdigest()


def _from_files(files: list[Path], extra_warnings=()) -> CalibrationSet:
    frames, names, skipped = [], [], []
    blobs = []
    for f in files:
        try:
            frames.append(read_image(f))
            names.append(str(f))
            blobs.append((f.name, f.read_bytes()))
        except InputError as e:
            skipped.append(str(e))
    if not frames:
        raise InputError(f"no readable calibration image among {len(files)} files (e.g. {skipped[0]})")
    warns = list(extra_warnings)
    if skipped:
        warns.append(f"skipped {len(skipped)} unreadable calibration files (e.g. {skipped[0]})")
    return CalibrationSet(frames, names, _hash(blobs), warns)


def _from_video(path: Path, num: int, every: int | None) -> CalibrationSet:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"cannot open video {path}")
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    step = every or max(1, total // num) if total else (every or 1)
    frames, blobs, idx, bad = [], [], 0, 0
    while len(frames) < num:
        ok, frame = cap.read()
        if not ok:
            break
        if idx % step == 0:
            if frame is None or frame.size == 0:
                bad += 1
            else:
                frames.append(frame)
                blobs.append((f"{path.name}#{idx}", cv2.resize(frame, (64, 64)).tobytes()))
        idx += 1
    cap.release()
    if not frames:
        raise InputError(f"no frames could be read from {path}")
    warns = []
    if len(frames) < num:
        warns.append(f"video {path.name} ended after {idx} frames: {len(frames)} calibration frames instead of {num}")
    if bad:
        warns.append(f"skipped {bad} empty frames in {path.name}")
    return CalibrationSet(frames, [f"{path}#{i}" for i in range(len(frames))], _hash(blobs), warns)


def _from_coco(path: Path, num: int, num_classes: int | None) -> CalibrationSet:
    from edgedet.data.coco import load_coco

    ds = load_coco(path)
    images = _pick(ds.images, num)
    warns = []
    seen = set()
    for im in images:
        seen.update(im.labels.tolist())
    missing = [ds.class_names[i] for i in range(len(ds.class_names)) if i not in seen]
    if missing:
        warns.append(
            f"calibration images contain no {', '.join(missing[:10])}: ranges for those classes' features may be off"
        )
    return _from_files([im.path for im in images], warns)


def cache_key(model_sha256: str, data_hash: str, method: str) -> str:
    return hashlib.sha256(json.dumps([model_sha256, data_hash, method]).encode()).hexdigest()[:16]
