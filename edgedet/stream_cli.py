"""`edgedet detect` on videos, cameras and stream URLs: pipelined detection into video / JSON-lines sinks.

The first Ctrl-C (or SIGTERM) stops reading, finishes the frames already read and closes the sinks, so the
video is playable and every frame that was read has its JSON line; a second Ctrl-C aborts."""
from __future__ import annotations

import json
import sys
import time
from collections import deque
from pathlib import Path

from .errors import InputError


class _Rate:
    """Frames per second over the last `n` frames."""

    def __init__(self, n: int = 30):
        self.t = deque(maxlen=n)

    def tick(self) -> float:
        self.t.append(time.perf_counter())
        return (len(self.t) - 1) / (self.t[-1] - self.t[0]) if len(self.t) > 1 and self.t[-1] > self.t[0] else 0.0


class _Window:
    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.quit = False

    def show(self, name: str, frame) -> None:
        if not self.enabled:
            return
        import cv2
        try:
            cv2.imshow(name, frame)
            self.quit = (cv2.waitKey(1) & 0xFF) == ord("q")
        except cv2.error:
            print("--show: this OpenCV build has no GUI (opencv-python-headless); not showing", file=sys.stderr)
            self.enabled = False


def _video_paths(save: str | None, n: int) -> list[Path | None]:
    if not save:
        return [None] * n
    p = Path(save)
    if n == 1:
        return [p]
    return [p.with_name(f"{p.stem}_{i}{p.suffix}") for i in range(n)]


def detect_stream(a) -> int:
    from .cli import load_detector
    from .progress import progress
    from .runtimes import CaptureOptions
    from .runtimes.sinks import JsonlSink, VideoSink
    from .visualize import draw

    det = load_detector(a, hint=a.hint.upper())
    capture = CaptureOptions(open_timeout_s=a.timeout, read_timeout_s=a.timeout, max_reconnects=max(0, a.reconnect))
    stream = det.stream(a.source, realtime=a.realtime, capture=capture)
    videos = [VideoSink(p, fps=s.stats.fps) if p else None
              for p, s in zip(_video_paths(a.save, len(a.source)), stream.sources)]
    jsonl = JsonlSink(a.jsonl) if a.jsonl else None
    window = _Window(a.show)
    rates = [_Rate() for _ in a.source]
    total = sum(s.total or 0 for s in stream.sources) if all(s.total for s in stream.sources) else None
    bar = progress(total=total, desc="detect", unit="frame")

    def handle(item) -> None:
        fps = rates[item.source].tick()
        if jsonl:
            jsonl.write(item)
        sink = videos[item.source]
        if sink is not None or window.enabled:
            frame = draw(item.frame, item.detections, text=f"{fps:5.1f} FPS  {item.latency_ms:5.0f} ms  "
                                                           f"{len(item.detections)} det")
            if sink is not None:
                sink.write(frame)
            window.show(f"edgedet {item.source}", frame)
        bar.update(1)

    interrupted = []

    def on_signal(signum, frame):  # first Ctrl-C/SIGTERM: stop reading and drain; a second one aborts
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(signum)
        print("\ninterrupted: finishing the frames already read (Ctrl-C again to abort) ...", file=sys.stderr)
        stream.stop()

    previous = _install(on_signal)
    try:
        for item in stream:
            handle(item)
            if window.quit:
                stream.stop()
    finally:
        _install(previous)
        bar.close()
        stream.close()
        for s in videos:
            if s is not None:
                s.close()
        if jsonl:
            jsonl.close()
    summary = stream.stats.to_dict()
    summary.update(model=a.model, backend=det.backend, device=det.device, interrupted=bool(interrupted),
                   outputs=[str(s.path) for s in videos if s is not None and s.frames] + ([str(jsonl.path)] if jsonl else []))
    if a.json:
        print(json.dumps(summary, indent=2))
    else:
        for s in summary["sources"]:
            extra = "".join(f", {s[k]} {k}" for k in ("corrupt", "reconnects") if s[k])
            print(f"{s['source']}: {s['frames_read']} frames read{extra}; ended: {s['ended'] or 'stopped'}")
        print(f"{summary['frames']} frames at {summary['fps']:.1f} FPS ({det.backend}, {det.device})"
              + (f", {summary['dropped']} dropped to stay real-time" if summary["dropped"] else ""))
        for o in summary["outputs"]:
            print(f"wrote {o}")
    if summary["frames"] == 0 and not interrupted:
        events = [e for s in summary["sources"] for e in s["events"]]
        raise InputError("no frame could be read" + (f": {events[-1]}" if events else ""))
    return 130 if interrupted else 0


def _install(handler):
    """Set SIGINT and SIGTERM to `handler` (or restore a pair returned before); returns the previous pair,
    or None outside the main thread, where signals are left alone (embedded use)."""
    import signal
    if handler is None:
        return None
    pair = handler if isinstance(handler, tuple) else (handler, handler)
    try:
        return tuple(signal.signal(sig, h) for sig, h in zip((signal.SIGINT, signal.SIGTERM), pair))
    except ValueError:
        return None
