"""Frame sources for streaming: video files, cameras, URLs, GStreamer pipelines and image folders (OpenCV).

Every source yields `(index, frame)` with `index` the frame's position in the stream (gaps mark frames that
could not be decoded), keeps counters in `SourceStats`, and never blocks without a bound: network opens and
reads carry OpenCV timeouts, and live sources reconnect with exponential backoff a bounded number of times.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgedet.errors import InputError
from edgedet.preprocess import IMAGE_SUFFIXES, MAX_PIXELS_ENV, ImageTooLarge, list_images, pixel_budget, read_image

log = logging.getLogger("edgedet.stream")

URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


@dataclass
class SourceStats:
    name: str
    live: bool
    frames_read: int = 0
    corrupt: int = 0  # frames that failed to decode and were skipped
    reconnects: int = 0
    expected: int | None = None  # frame count announced by a file, when known
    ended: str = ""  # why the source stopped: "end", "gave up: ...", "stopped"
    fps: float = 0.0
    events: list[str] = field(default_factory=list)

    def note(self, msg: str) -> None:
        self.events.append(msg)
        log.warning("%s: %s", self.name, msg)


class FrameSource:
    """Base: iterate to get (index, BGR uint8 frame); `close()` releases the device."""

    live = False

    def __init__(self, name: str):
        self.name = name
        self.stats = SourceStats(name=name, live=self.live)
        self._stopped = False

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        raise NotImplementedError

    @property
    def total(self) -> int | None:
        return self.stats.expected

    def stop(self) -> None:
        self._stopped = True

    def close(self) -> None:
        pass


class FolderSource(FrameSource):
    """Images of a folder in name order; files that cannot be read or decoded (corrupt, not an image, over the
    pixel budget) are counted as corrupt and skipped: the stream goes on."""

    def __init__(self, folder: Path):
        super().__init__(str(folder))
        self.files = list_images(folder)
        if not self.files:
            raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
        self.stats.expected = len(self.files)

    def __iter__(self):
        for i, f in enumerate(self.files):
            if self._stopped:
                self.stats.ended = "stopped"
                return
            try:
                frame = read_image(f)
            except InputError as e:
                self.stats.corrupt += 1
                self.stats.note(f"skipped frame {i}: {e}")
                continue
            self.stats.frames_read += 1
            yield i, frame
        self.stats.ended = "end"


@dataclass
class CaptureOptions:
    open_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    max_reconnects: int = 5  # live sources: reopen attempts after one drop (0 = never)
    max_reconnects_total: int = 50  # live sources: successful reconnects over the whole run
    reconnect_window_s: float = 300.0  # ... and at most max_reconnects_per_window within any such window,
    max_reconnects_per_window: int = 10  # so a source that stalls again and again is given up
    backoff_s: float = 0.5  # first wait before reopening; doubles up to backoff_max_s
    backoff_max_s: float = 8.0
    max_bad_reads: int = 30  # files: consecutive undecodable frames before giving up


class CaptureSource(FrameSource):
    """cv2.VideoCapture over a file, camera index, URL or GStreamer pipeline."""

    def __init__(self, spec, kind: str, options: CaptureOptions | None = None):
        self.kind = kind
        self.live = kind != "file"
        super().__init__(str(spec))
        self.spec = spec
        self.opt = options or CaptureOptions()
        self._reconnected_at: list[float] = []
        self.cap = self._open()
        if self.cap is None:
            raise InputError(self._open_error())
        self._check_frame_size()
        n = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.stats.expected = n if (n > 0 and not self.live) else None
        self.stats.fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)

    def _check_frame_size(self) -> None:
        """Frames over the pixel budget (EDGEDET_MAX_PIXELS) are refused before the first is decoded."""
        w, h = (int(self.cap.get(p) or 0) for p in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT))
        budget = pixel_budget()
        if w * h > budget:
            self.close()
            raise ImageTooLarge(
                f"{self.spec}: frames of {w}x{h} = {w * h} pixels are over the pixel budget of {budget} "
                f"(${MAX_PIXELS_ENV} raises it)"
            )

    def _open_error(self) -> str:
        if self.kind == "file":
            size = Path(self.spec).stat().st_size
            return f"cannot open video {self.spec}" + (
                " (empty file)" if size == 0 else " (not a video OpenCV can decode, or truncated)"
            )
        if self.kind == "gstreamer":
            return (
                f"cannot open GStreamer pipeline {self.spec!r}: this OpenCV build "
                f"{'has' if _has_backend('GSTREAMER') else 'has no'} GStreamer support"
            )
        if self.kind == "camera":
            return f"cannot open camera {self.spec} (no such device, or in use by another process)"
        return (
            f"cannot open stream {self.spec} within {self.opt.open_timeout_s:g}s "
            "(unreachable host, refused connection, or an unsupported URL)"
        )

    def _open(self):
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(self.opt.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(self.opt.read_timeout_s * 1000),
        ]
        if self.kind == "camera":
            cap = cv2.VideoCapture(int(self.spec))
        elif self.kind == "gstreamer":
            cap = cv2.VideoCapture(self.spec, cv2.CAP_GSTREAMER)
        elif self.kind == "url":
            cap = cv2.VideoCapture(self.spec, cv2.CAP_FFMPEG, params)
        else:
            cap = cv2.VideoCapture(str(self.spec), cv2.CAP_ANY)
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def __iter__(self):
        index = 0  # position in the stream, counting frames that failed to decode
        bad = 0
        while not self._stopped:
            ok, frame = self.cap.read() if self.cap is not None else (False, None)
            if ok and frame is not None and frame.size:
                bad = 0
                self.stats.frames_read += 1
                yield index, _as_bgr8(frame)
                index += 1
                continue
            if self._stopped:
                break
            if self.live:
                if not self._reconnect():
                    return
                continue
            # File: a failed read before the announced end is a corrupt frame; skip it, bounded.
            expected = self.stats.expected
            if expected is not None and index < expected and bad < self.opt.max_bad_reads:
                bad += 1
                self.stats.corrupt += 1
                index += 1
                continue
            if expected is not None and self.stats.frames_read + self.stats.corrupt < expected:
                self.stats.note(f"stream ended after {index} of {expected} frames (truncated file?)")
            self.stats.ended = "end"
            return
        self.stats.ended = "stopped"

    def _reconnect(self) -> bool:
        """Reopen a dropped live source with exponential backoff; False when the attempts are used up."""
        if self.cap is not None:
            self.cap.release()
            self.cap = None
        if self._over_budget():
            return False
        wait = self.opt.backoff_s
        for attempt in range(1, self.opt.max_reconnects + 1):
            self.stats.note(f"source dropped; reconnect {attempt}/{self.opt.max_reconnects} in {wait:.1f}s")
            if _sleep_unless(lambda: self._stopped, wait):
                self.stats.ended = "stopped"
                return False
            self.cap = self._open()
            if self.cap is not None:
                self.stats.reconnects += 1
                self._reconnected_at.append(time.monotonic())
                return True
            wait = min(wait * 2, self.opt.backoff_max_s)
        self.stats.ended = f"gave up after {self.opt.max_reconnects} reconnect attempts"
        self.stats.note(self.stats.ended)
        return False

    def _over_budget(self) -> bool:
        """A bounded total and a bounded rate of reconnects: a camera that delivers a few frames and stalls,
        again and again, is given up rather than reconnected forever."""
        now = time.monotonic()
        recent = [t for t in self._reconnected_at if now - t <= self.opt.reconnect_window_s]
        reason = None
        if self.stats.reconnects >= self.opt.max_reconnects_total:
            reason = f"gave up after {self.stats.reconnects} reconnects in total (max_reconnects_total)"
        elif len(recent) >= self.opt.max_reconnects_per_window:
            reason = (
                f"gave up: {len(recent)} reconnects within {self.opt.reconnect_window_s:g}s (max_reconnects_per_window)"
            )
        if reason:
            self.stats.ended = reason
            self.stats.note(reason)
        return reason is not None

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


def _sleep_unless(stopped, seconds: float) -> bool:
    """Sleep in small steps; True if `stopped()` became true meanwhile."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if stopped():
            return True
        time.sleep(min(0.05, max(0.0, end - time.monotonic())))
    return stopped()


def _as_bgr8(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame


def _has_backend(name: str) -> bool:
    try:
        return any(cv2.videoio_registry.getBackendName(b) == name for b in cv2.videoio_registry.getBackends())
    except Exception:
        return False


def source_kind(spec) -> str:
    """'camera' | 'url' | 'gstreamer' | 'folder' | 'image' | 'file' for a --source value."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        return "camera"
    s = str(spec)
    if s.lower().startswith(URL_SCHEMES):
        return "url"
    if " ! " in s:
        return "gstreamer"
    p = Path(s)
    if p.is_dir():
        return "folder"
    if not p.exists():
        if "://" in s:
            raise InputError(f"unsupported URL scheme in {s!r}; use one of {', '.join(URL_SCHEMES)}")
        raise InputError(f"source not found: {s}")
    return "image" if p.suffix.lower() in IMAGE_SUFFIXES else "file"


def open_source(spec, options: CaptureOptions | None = None) -> FrameSource:
    """Open any --source value (an existing FrameSource passes through)."""
    if isinstance(spec, FrameSource):
        return spec
    kind = source_kind(spec)
    if kind == "folder":
        return FolderSource(Path(spec))
    if kind == "image":
        raise InputError(
            f"{spec} is a single image: call the detector on it directly (stream takes videos, "
            "cameras, URLs and folders)"
        )
    return CaptureSource(spec, kind, options)
