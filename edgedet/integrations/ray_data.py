"""Batch detection on Ray Data: one Detector per actor, over image folders/globs/buckets and video files.

    ds = image_dataset(["images/"])                     # or video_dataset(["a.mp4"]), or your own Dataset
    out = detect_dataset(ds, "d0.xml", actors=2, batch_size=8)
    out.write_parquet("results.parquet")

Rows in: `path` and either `bytes` (an encoded image, from ray.data.read_binary_files) or `image` (a decoded BGR
frame) plus `frame`. Rows out: path, frame, boxes (x1 y1 x2 y2 per detection, original pixels), scores,
class_ids, labels, error. An image that does not decode, or whose header declares more pixels than the budget
(`max_pixels`, refused before decoding), is reported in its row (`error`), never fatal. Actors that die are
restarted by Ray and their batches retried, so every input appears exactly once.

Videos are counted by decoding, never by their container's frame count (which can say 0, or 10^8, for 24 frames):
see `video_dataset`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedet.errors import EdgeDetError, InputError

from .common import import_ray, threads_per_worker

COLUMNS = ("path", "frame", "boxes", "scores", "class_ids", "labels", "error")


def _ray():
    return import_ray("data")


class DetectActor:
    """Loads one Detector per Ray actor; called with pandas batches."""

    def __init__(
        self,
        artifact: str,
        backend=None,
        device=None,
        score_threshold: float = 0.25,
        options=None,
        max_pixels: int | None = None,
    ):
        from edgedet.preprocess import pixel_budget
        from edgedet.runtimes import Detector

        self.max_pixels = pixel_budget(max_pixels)
        self.det = Detector.load(
            artifact, backend=backend, device=device, score_threshold=score_threshold, **(options or {})
        )

    def __call__(self, batch):
        import pandas as pd

        frames, rows = [], []
        for i in range(len(batch)):
            row = {
                "path": str(batch["path"].iloc[i]),
                "frame": int(batch["frame"].iloc[i]) if "frame" in batch else 0,
                "error": "",
            }
            try:
                frames.append(self._image(batch, i))
            except EdgeDetError as e:
                frames.append(None)
                row["error"] = str(e)
            rows.append(row)
        valid = [f for f in frames if f is not None]
        dets = iter(self.det(valid) if valid else [])
        for row, frame in zip(rows, frames):
            d = next(dets) if frame is not None else None
            row.update(
                boxes=[] if d is None else d.xyxy.tolist(),
                scores=[] if d is None else d.scores.tolist(),
                class_ids=[] if d is None else d.class_ids.tolist(),
                labels=[] if d is None else d.labels,
            )
        return pd.DataFrame(rows, columns=list(COLUMNS))

    def _image(self, batch, i) -> np.ndarray:
        from edgedet.preprocess import decode_image, to_bgr8

        name = str(batch["path"].iloc[i])
        if "image" in batch:
            return to_bgr8(np.asarray(batch["image"].iloc[i]), name)
        return decode_image(batch["bytes"].iloc[i], name, self.max_pixels)


def detect_dataset(
    ds,
    artifact: str | Path,
    actors: int = 2,
    batch_size: int = 32,
    backend=None,
    device=None,
    score_threshold: float = 0.25,
    num_gpus: float = 0,
    max_pixels: int | None = None,
    **options,
):
    """Map a Ray Dataset of images/frames through one Detector per actor (see the module docstring). Ray Data
    restarts a dead actor and retries its batches (unlimited by default), so each input appears once."""
    ray = _ray()
    artifact = str(artifact)
    opts = threads_per_worker(artifact, backend, actors, options)
    return ds.map_batches(
        DetectActor,
        fn_constructor_kwargs={
            "artifact": artifact,
            "backend": backend,
            "device": device,
            "score_threshold": score_threshold,
            "options": opts,
            "max_pixels": max_pixels,
        },
        batch_size=batch_size,
        batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=num_gpus or None,
        # a fractional CPU reservation per actor: actors never hold every CPU, so Ray's read tasks can still run
        # (the actors' real thread count is set by the runner's `threads` option above)
        num_cpus=0.5,
    )


def image_dataset(sources: list[str]):
    """Images from folders, globs, files or bucket URLs (s3://, gs://) as encoded bytes with their paths."""
    ray = _ray()
    from edgedet.preprocess import IMAGE_SUFFIXES

    paths = []
    for s in sources:
        p = Path(s)
        if p.is_dir():
            paths += sorted(str(f) for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        elif "*" in s:
            paths += sorted(str(f) for f in Path().glob(s) if f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            paths.append(s)
    if not paths:
        raise InputError(f"no images in {', '.join(sources)}")
    return ray.data.read_binary_files(paths, include_paths=True)


def video_dataset(videos: list[str], frames_per_task: int = 300, max_pixels: int | None = None):
    """Frames of video files, counted by decoding: a container's frame count can say 0, or 10^8, for 24 frames.

    One planning task per video decodes it once (grab: no colour conversion), counting its frames and
    fingerprinting every `frames_per_task`-th one, and tries a seek. A video whose seeks land on the fingerprinted
    frames is split into ranges of `frames_per_task` frames, one task each (a bound on the work of a task); one
    that cannot seek (a raw MJPEG stream; FFmpeg's AVI reader when the header says 0 frames) is decoded front to
    back by one task. Either way the frames are exactly those a sequential read decodes (`edgedet detect`'s).
    A video that cannot be opened, has no decodable frame, or has frames over the pixel budget is an InputError
    before any detection."""
    ray = _ray()
    from edgedet.preprocess import pixel_budget

    budget = pixel_budget(max_pixels)
    plan = ray.remote(num_cpus=0.5)(plan_video)
    plans = ray.get([plan.remote(str(v), frames_per_task, budget) for v in videos])
    for p in plans:
        if isinstance(p, str):
            raise InputError(p)
    items = [item for p in plans for item in p]
    return ray.data.from_items(items, override_num_blocks=len(items)).flat_map(_decode_range)


def _fingerprint(frame: np.ndarray) -> str:
    import hashlib

    return hashlib.sha1(np.ascontiguousarray(frame).data).hexdigest()


def _open_video(path: str, budget: int):
    """An opened capture, or the reason it cannot be used (not a video, frames over the pixel budget)."""
    import cv2

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        return None, f"cannot open video {path} (not a video OpenCV can decode, or truncated)"
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    if w * h > budget:
        cap.release()
        return None, f"{path}: frames of {w}x{h} = {w * h} pixels are over the pixel budget of {budget}"
    return cap, ""


def plan_video(path: str, frames_per_task: int, budget: int) -> list[dict] | str:
    """The decode tasks of one video (frame ranges with the fingerprint of their first frame, or one range over
    the whole video when it cannot seek), or why it cannot be read."""
    cap, error = _open_video(path, budget)
    if cap is None:
        return error
    n, firsts = 0, []
    try:
        while cap.grab():
            if n % frames_per_task == 0:
                ok, frame = cap.retrieve()
                firsts.append(_fingerprint(frame) if ok else "")
            n += 1
    finally:
        cap.release()
    if n == 0:
        return f"{path}: no frame of the video decodes"
    if len(firsts) > 1 and _seek(path, frames_per_task, firsts[1], budget) is not None:
        return [
            {"path": path, "start": s, "stop": min(n, s + frames_per_task), "first": f}
            for s, f in zip(range(0, n, frames_per_task), firsts)
        ]
    return [{"path": path, "start": 0, "stop": n, "first": firsts[0]}]


def _seek(path: str, index: int, fingerprint: str, budget: int = 1 << 62):
    """A capture positioned on frame `index`, checked against that frame's fingerprint (OpenCV's seek can stay at
    frame 0 without an error), and the frame; None if the seek did not land there."""
    import cv2

    cap, _ = _open_video(path, budget)
    if cap is None:
        return None
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = cap.read()
    if ok and int(cap.get(cv2.CAP_PROP_POS_FRAMES)) == index + 1 and _fingerprint(frame) == fingerprint:
        return cap, frame
    cap.release()
    return None


def _skip_to(path: str, index: int):
    """A capture that decoded its way to frame `index` (for a video that cannot seek), and that frame."""
    import cv2

    cap = cv2.VideoCapture(path)
    for _ in range(index):
        cap.grab()
    ok, frame = cap.read()
    return cap, (frame if ok else None)


def _decode_range(item: dict):
    start, stop, path = item["start"], item["stop"], item["path"]
    sought = _seek(path, start, item["first"]) if start else None
    cap, frame = sought or _skip_to(path, start)
    try:
        index = start
        while frame is not None and index < stop:
            yield {"path": path, "frame": index, "image": frame}
            index += 1
            if index < stop:
                ok, frame = cap.read()
                frame = frame if ok else None
    finally:
        cap.release()
