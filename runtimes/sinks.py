"""Output sinks: annotated video and JSON lines. Both write under a temporary name beside the target and are
moved into place only when closed successfully, so a file under the final name is always complete: a JSONL
file never ends in a half line, a video is reopened and its frames counted before it is published. A write
failure (disk full) raises OSError; `abort()` (or a failed close) removes the temporary file. Leftovers of
killed runs (their process is gone) are removed the next time a sink opens in that folder."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np

from edgedet.errors import InputError
from edgedet.fileio import clean_stale


def _temp_name(path: Path) -> Path:
    """`.<name>.partial-<pid>-<n><suffix>` beside path (kept by the suffix: OpenCV picks the container by it)."""
    prefix = f".{path.name}.partial-"
    clean_stale(path.parent, prefix)
    return path.with_name(f"{prefix}{os.getpid()}-{id(path) % 100000}{path.suffix}")


def check_writable(path: str | Path, what: str) -> Path:
    """Fail before any work if path cannot be written as a file (a folder, or no permission)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{what} {path}: cannot create {parent}: {e.strerror}") from None
    if not os.access(parent, os.W_OK):
        raise InputError(f"{what} {path}: folder {parent} is not writable")
    return path


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
        check_writable(self.path, "--save")
        self.tmp = _temp_name(self.path)
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
        """Finish the file, verify it decodes with every frame written, then publish it under its name."""
        if self.writer is None:
            return
        self.writer.release()
        self.writer = None
        try:
            decoded = count_frames(self.tmp)
            if decoded < self.frames:
                raise OSError(
                    errno.EIO,
                    f"video {self.path} is incomplete: {decoded} of {self.frames} frames "
                    "decode (disk full?); nothing was written under its name",
                    str(self.path),
                )
            os.replace(self.tmp, self.path)
        finally:
            self.abort()

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        self.tmp.unlink(missing_ok=True)


def count_frames(path: Path) -> int:
    """Frames that decode from a video file (reads them all: a header alone can claim frames that are gone)."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    try:
        while cap.isOpened() and cap.grab():
            n += 1
    finally:
        cap.release()
    return n


class JsonLines:
    """JSON objects, one per line, written under a temporary name and published by close()."""

    def __init__(self, path: str | Path):
        self.path = check_writable(path, "--jsonl")
        self.tmp = _temp_name(self.path)
        self.f = open(self.tmp, "w", encoding="utf-8")
        self.lines = 0

    def write(self, record: dict) -> None:
        self.f.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.f.flush()  # a full disk fails here, on this line, not at close
        self.lines += 1

    def close(self) -> None:
        if self.f.closed:
            return
        try:
            self.f.flush()
            os.fsync(self.f.fileno())
            self.f.close()
            os.replace(self.tmp, self.path)
        finally:
            self.abort()

    def abort(self) -> None:
        if not self.f.closed:
            try:
                self.f.close()
            except OSError:
                pass
        self.tmp.unlink(missing_ok=True)


class JsonlSink(JsonLines):
    """One JSON object per frame: source, frame index, capture time (unix s), latency, detections."""

    def __init__(self, path: str | Path):
        super().__init__(path)
        self._clock = time.time() - time.perf_counter()  # perf_counter -> unix time

    def write(self, item) -> None:
        super().write(
            {
                "source": item.source,
                "frame": item.index,
                "time": round(self._clock + item.captured, 4),
                "latency_ms": round(item.latency_ms, 2),
                **item.detections.to_dict(),
            }
        )
