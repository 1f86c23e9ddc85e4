"""Streaming sinks: annotated video and JSON lines. Both are safe to interrupt: the JSONL file is flushed per
line, and the video is written under a temporary name and moved into place when closed, so an output file
is always complete (close it from a `finally`)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
import numpy as np

from edgedet.errors import InputError

# container suffix -> fourcc that the pip OpenCV builds can encode
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}


class VideoSink:
    def __init__(self, path: str | Path, fps: float = 30.0):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in FOURCC:
            raise InputError(f"--save {self.path}: video output must end in {', '.join(FOURCC)}")
        self.fourcc = FOURCC[suffix]
        self.fps = float(fps) if fps and 0 < fps < 1000 else 30.0
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{suffix}")
        self.writer = None
        self.size = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.size = (frame.shape[1], frame.shape[0])
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, self.size)
            if not self.writer.isOpened():
                raise InputError(f"cannot write video {self.path} with codec {self.fourcc}")
        if (frame.shape[1], frame.shape[0]) != self.size:  # a source that changed resolution mid-stream
            frame = cv2.resize(frame, self.size)
        self.writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            os.replace(self.tmp, self.path)


class JsonlSink:
    """One JSON object per frame: source, frame index, capture time (unix s), latency, detections."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(self.path, "w", encoding="utf-8", buffering=1)  # line-buffered: every line lands
        self.lines = 0
        self._clock = time.time() - time.perf_counter()  # perf_counter -> unix time

    def write(self, item) -> None:
        rec = {"source": item.source, "frame": item.index, "time": round(self._clock + item.captured, 4),
               "latency_ms": round(item.latency_ms, 2), **item.detections.to_dict()}
        self.f.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self.lines += 1

    def close(self) -> None:
        if not self.f.closed:
            self.f.flush()
            os.fsync(self.f.fileno())
            self.f.close()
