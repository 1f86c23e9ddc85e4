"""Batch detection on Ray Data: one Detector per actor, over image folders/globs/buckets and video files.

    ds = image_dataset(["images/"])                     # or video_dataset(["a.mp4"]), or your own Dataset
    out = detect_dataset(ds, "d0.xml", actors=2, batch_size=8)
    out.write_parquet("results.parquet")

Rows in: `path` and either `bytes` (an encoded image, from ray.data.read_binary_files) or `image` (a decoded BGR
frame) plus `frame`. Rows out: path, frame, boxes (x1 y1 x2 y2 per detection, original pixels), scores,
class_ids, labels, error. An image that does not decode is reported in its row (`error`), never fatal. Actors
that die are restarted by Ray and their batches retried, so every input appears exactly once.
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

    def __init__(self, artifact: str, backend=None, device=None, score_threshold: float = 0.25, options=None):
        from edgedet.runtimes import Detector

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

    @staticmethod
    def _image(batch, i) -> np.ndarray:
        from edgedet.preprocess import decode_image, to_bgr8

        name = str(batch["path"].iloc[i])
        if "image" in batch:
            return to_bgr8(np.asarray(batch["image"].iloc[i]), name)
        return decode_image(batch["bytes"].iloc[i], name)


def detect_dataset(
    ds,
    artifact: str | Path,
    actors: int = 2,
    batch_size: int = 32,
    backend=None,
    device=None,
    score_threshold: float = 0.25,
    num_gpus: float = 0,
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


def video_dataset(videos: list[str], frames_per_task: int = 300):
    """Frames of video files: each video is split into frame ranges (so several actors share a long one), and
    each range is decoded by one task."""
    ray = _ray()
    import cv2

    items = []
    for v in videos:
        cap = cv2.VideoCapture(str(v))
        if not cap.isOpened():
            raise InputError(f"cannot open video {v}")
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        cap.release()
        items += [
            {"path": str(v), "start": s, "stop": min(n, s + frames_per_task)}
            for s in range(0, max(n, 1), frames_per_task)
        ]
    return ray.data.from_items(items).flat_map(_decode_range)


def _decode_range(item: dict):
    import cv2

    cap = cv2.VideoCapture(item["path"])
    cap.set(cv2.CAP_PROP_POS_FRAMES, item["start"])
    for index in range(item["start"], item["stop"]):
        ok, frame = cap.read()
        if not ok:
            break
        yield {"path": item["path"], "frame": index, "image": frame}
    cap.release()
