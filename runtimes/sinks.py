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
from collections.abc import Callable
from dataclasses import dataclass
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


class _OpenCvWriter:
    """cv2.VideoWriter with a fourcc the pip OpenCV builds can encode (mp4v, MJPG)."""

    def __init__(self, path: Path, fourcc: str, fps: float, size: tuple[int, int]):
        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if not self.writer.isOpened():
            raise InputError(f"cannot write video {path} with codec {fourcc}")

    def write(self, frame: np.ndarray) -> None:
        self.writer.write(frame)

    def release(self, discard: bool = False) -> None:
        self.writer.release()


class _PyAvWriter:
    """H.264 (libx264, yuv420p: what browsers and players open) through PyAV's FFmpeg. yuv420p needs even sizes:
    an odd width or height gets one black column or row."""

    def __init__(self, path: Path, codec: str, fps: float, size: tuple[int, int]):
        import fractions

        import av

        self.even = (size[0] + size[0] % 2, size[1] + size[1] % 2)
        self.container = av.open(str(path), mode="w")
        self.stream = self.container.add_stream(codec, rate=fractions.Fraction(fps).limit_denominator(1001))
        self.stream.width, self.stream.height = self.even
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"crf": "23", "preset": "veryfast"}
        self._frame = av.VideoFrame
        # the header now, not with the first packet (x264 holds frames back): on a full disk, flushing and closing
        # a container whose first write (the header) failed crashed the process (tests/cli/test_filesystem.py)
        self.container.start_encoding()

    def write(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if (w, h) != self.even:
            frame = cv2.copyMakeBorder(frame, 0, self.even[1] - h, 0, self.even[0] - w, cv2.BORDER_CONSTANT)
        for packet in self.stream.encode(self._frame.from_ndarray(frame, format="bgr24")):
            self.container.mux(packet)

    def release(self, discard: bool = False) -> None:
        """Finish the file; `discard`: it is being thrown away, so the encoder's delayed frames are not flushed."""
        try:
            if not discard:
                for packet in self.stream.encode():  # flush the encoder's delayed frames
                    self.container.mux(packet)
        finally:
            self.container.close()


def _pyav_h264() -> str | None:
    """PyAV's H.264 encoder name, or None where PyAV (the 'video' extra) or its libx264 is absent."""
    try:
        import av
    except ImportError:
        return None
    return "libx264" if "libx264" in av.codecs_available else None


@dataclass(frozen=True)
class VideoCodec:
    """One way to write a video: its name, the containers it goes in, the library and how to open it."""

    name: str
    suffixes: tuple[str, ...]
    library: str
    available: Callable[[], str | None]  # the encoder to use, or None where it cannot be used here
    open: Callable  # (path, encoder, fps, size) -> a writer with write(frame) and release()


# first match wins: H.264 through PyAV when installed (the 'video' extra), else what pip OpenCV encodes
CODECS = (
    VideoCodec("H.264", (".mp4", ".m4v", ".mov", ".mkv"), "PyAV", lambda: _pyav_h264(), _PyAvWriter),
    VideoCodec("mp4v", (".mp4", ".m4v", ".mov", ".mkv"), "OpenCV", lambda: "mp4v", _OpenCvWriter),
    VideoCodec("MJPG", (".avi",), "OpenCV", lambda: "MJPG", _OpenCvWriter),
)
VIDEO_SUFFIXES = tuple(dict.fromkeys(s for c in CODECS for s in c.suffixes))


def choose_codec(suffix: str) -> tuple[VideoCodec, str]:
    for codec in CODECS:
        if suffix in codec.suffixes:
            encoder = codec.available()
            if encoder is not None:
                return codec, encoder
    raise InputError(f"video output must end in {', '.join(VIDEO_SUFFIXES)}")


class VideoSink:
    def __init__(self, path: str | Path, fps: float = 30.0):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_SUFFIXES:
            raise InputError(f"--save {self.path}: video output must end in {', '.join(VIDEO_SUFFIXES)}")
        self.codec, self.encoder = choose_codec(suffix)
        self.fps = float(fps) if fps and 0 < fps < 1000 else 30.0
        check_writable(self.path, "--save")
        self.tmp = _temp_name(self.path)
        self.writer = None
        self.size = None
        self.frames = 0

    @property
    def description(self) -> str:
        """Which codec wrote it, said by the command ("H.264 (PyAV)", "mp4v (OpenCV; ...)")."""
        hint = (
            ""
            if self.codec.name == "H.264" or self.path.suffix.lower() == ".avi"
            else ("; pip install 'edgedet[video]' for H.264")
        )
        return f"{self.codec.name} ({self.codec.library}{hint})"

    def write(self, frame: np.ndarray) -> None:
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.size = (frame.shape[1], frame.shape[0])
            self.writer = self.codec.open(self.tmp, self.encoder, self.fps, self.size)
        if (frame.shape[1], frame.shape[0]) != self.size:  # a source that changed resolution mid-stream
            frame = cv2.resize(frame, self.size)
        self.writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        """Finish the file, verify it decodes with every frame written, then publish it under its name."""
        if self.writer is None:
            return
        writer, self.writer = self.writer, None
        try:
            writer.release()
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
            writer, self.writer = self.writer, None
            try:
                writer.release(discard=True)
            except Exception:  # noqa: BLE001 - the file is being thrown away
                pass
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
