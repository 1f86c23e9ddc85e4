"""Pipelined streaming detection: decode, inference and post-processing overlap.

    reader thread per source:  read frame -> letterbox/normalise  -> bounded input queue
    dispatcher thread:         batch frames (across sources)      -> runner.async_queue().submit
    inference callbacks:       decode + NMS on the request outputs -> output queue
    caller (iterating):        frames in order, with their Detections

Memory stays flat however fast the source and however slow the caller: the input queue is bounded, and so are
the batches submitted but not yet taken by the caller (the requests in flight plus one), so a caller that falls
behind holds the dispatcher, which holds the readers. With `realtime=True` a held reader drops the oldest waiting
frame instead of blocking (live cameras stay current); otherwise every frame is processed. `stop()` stops
reading; the frames already read still come out, so a Ctrl-C loses no detections.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from edgedet.detections import Detections
from edgedet.errors import EdgeDetError
from edgedet.options import check_probability

from .sources import CaptureOptions, FrameSource, SourceStats, open_source

_END = object()


@dataclass
class StreamItem:
    """One processed frame. Unpacks as `index, frame, detections`; `source` says which stream it came from."""

    index: int
    frame: np.ndarray
    detections: Detections
    source: int = 0
    captured: float = 0.0  # time.perf_counter() when the frame was read
    latency_ms: float = 0.0  # read -> detections ready

    def __iter__(self):
        return iter((self.index, self.frame, self.detections))


@dataclass
class StreamStats:
    sources: list[SourceStats] = field(default_factory=list)
    frames_out: int = 0
    dropped: int = 0  # realtime mode: frames skipped to stay current
    batches: int = 0
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None

    @property
    def fps(self) -> float:
        end = self.finished or time.perf_counter()
        return self.frames_out / max(end - self.started, 1e-9)

    def to_dict(self) -> dict:
        return {
            "frames": self.frames_out,
            "fps": round(self.fps, 2),
            "dropped": self.dropped,
            "batches": self.batches,
            "sources": [
                {
                    "source": s.name,
                    "frames_read": s.frames_read,
                    "corrupt": s.corrupt,
                    "reconnects": s.reconnects,
                    "expected": s.expected,
                    "ended": s.ended,
                    "events": s.events[-10:],
                }
                for s in self.sources
            ],
        }


@dataclass
class _Frame:
    source: int
    index: int
    frame: np.ndarray
    tensor: np.ndarray
    info: object
    captured: float


class DetectionStream:
    """Iterator over StreamItems; use as a context manager or call `close()` to release sources and threads."""

    def __init__(
        self,
        detector,
        sources,
        realtime: bool = False,
        batch: int | None = None,
        queue_size: int = 4,
        jobs: int | None = None,
        score_threshold: float | None = None,
        capture: CaptureOptions | None = None,
    ):
        self.det = detector
        specs = list(sources) if isinstance(sources, (list, tuple)) else [sources]
        self.sources: list[FrameSource] = []
        try:
            for s in specs:
                self.sources.append(open_source(s, capture))
        except BaseException:
            for src in self.sources:
                src.close()
            raise
        self.realtime = realtime
        self.thr = (
            detector.score_threshold
            if score_threshold is None
            else check_probability("score_threshold", score_threshold)
        )
        cap = detector.static_batch or detector.max_batch
        self.batch = max(1, min(int(batch or len(self.sources)), cap))
        self.stats = StreamStats(sources=[s.stats for s in self.sources])
        self._in: queue.Queue = queue.Queue(maxsize=max(queue_size, self.batch))
        self._out: queue.Queue = queue.Queue()  # bounded by _untaken below
        self._stop = threading.Event()
        self._closed = threading.Event()
        self._error: BaseException | None = None
        self._next_seq = 0  # batch sequence numbers, to emit in submission order
        self._ready: dict[int, list[StreamItem]] = {}
        self._emit_seq = 0
        self._pending: list[StreamItem] = []
        self._done = False
        self._aq = detector.runner.async_queue(jobs)
        self._aq.on_error = self._fail  # a failed request stops the stream and is raised to the caller
        # batches submitted and not yet taken by the caller: the requests in flight plus one ready batch
        self._untaken = threading.Semaphore(self._aq.capacity + 1)
        self._readers = [
            threading.Thread(target=self._read, args=(i, s), daemon=True, name=f"edgedet-read-{i}")
            for i, s in enumerate(self.sources)
        ]
        self._live_readers = len(self._readers)
        self._readers_lock = threading.Lock()
        self._dispatcher = threading.Thread(target=self._dispatch, daemon=True, name="edgedet-dispatch")
        for t in self._readers:
            t.start()
        self._dispatcher.start()

    # ------------------------------------------------------------------ threads
    def _read(self, sid: int, src: FrameSource) -> None:
        try:
            for index, frame in src:  # stop() ends this loop at the next read; a frame read is processed
                tensor, info = self.det.prepare(frame)
                self._put(_Frame(sid, index, frame, tensor, info, time.perf_counter()))
        except BaseException as e:  # noqa: BLE001 - reported to the caller
            self._fail(e)
        finally:
            with self._readers_lock:
                self._live_readers -= 1
                last = self._live_readers == 0
            if last:
                self._put_blocking(_END)

    def _put(self, item: _Frame) -> None:
        if not self.realtime:
            self._put_blocking(item)
            return
        while True:
            try:
                self._in.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._in.get_nowait()
                    self.stats.dropped += 1
                except queue.Empty:
                    pass

    def _put_blocking(self, item) -> None:
        """Wait for room: a frame that was read is always processed, even after stop(). Only a dead
        dispatcher (an error already reported) makes the reader give up."""
        while True:
            try:
                self._in.put(item, timeout=0.1)
                return
            except queue.Full:
                if not self._dispatcher.is_alive():
                    return

    def _dispatch(self) -> None:
        ended = False
        try:
            while not ended:
                # a slot first, then the frames: a realtime reader keeps replacing waiting frames meanwhile
                if not self._wait_for_caller():
                    break
                first = self._in.get()
                if first is _END:
                    break
                group = [first]
                while len(group) < self.batch:
                    try:
                        nxt = self._in.get(timeout=0.002)
                    except queue.Empty:
                        break
                    if nxt is _END:
                        ended = True
                        break
                    group.append(nxt)
                self._submit(group)
            self._aq.wait_all()
        except BaseException as e:  # noqa: BLE001
            self._fail(e)
        finally:
            self._out.put(_END)

    def _wait_for_caller(self) -> bool:
        """Wait until the caller has taken enough batches for one more; False once the stream is closed or failed.

        A request that fails may never call back: the caller would wait for its batch while this waits for the
        caller. So while waiting, ask the queue about finished requests; a failure raises here, ends the stream,
        and reaches the caller."""
        while not self._untaken.acquire(timeout=0.1):
            if self._closed.is_set() or self._error is not None:
                return False
            self._aq.check()
        return True

    def _submit(self, group: list[_Frame]) -> None:
        seq = self._next_seq
        self._next_seq += 1
        single = len(group) == 1 and self.det.static_batch in (None, 1)
        tensor = group[0].tensor if single else self._stack(group)
        self.stats.batches += 1

        def done(outputs, group=group, seq=seq):
            try:
                items = []
                for i, f in enumerate(group):
                    dets = self.det.postprocess(outputs, i, f.info, self.thr)
                    items.append(
                        StreamItem(
                            f.index, f.frame, dets, f.source, f.captured, (time.perf_counter() - f.captured) * 1e3
                        )
                    )
                self._out.put((seq, items))
            except BaseException as e:  # noqa: BLE001
                self._fail(e)
                self._out.put((seq, []))

        self._aq.submit(self.det.feeds(tensor), done)

    def _stack(self, group: list[_Frame]) -> np.ndarray:
        n = self.det.static_batch or len(group)
        first = group[0].tensor
        out = np.zeros((n, *first.shape[1:]), first.dtype)
        for i, f in enumerate(group):
            out[i] = f.tensor[0]
        return out

    def _fail(self, e: BaseException) -> None:
        if self._error is None:
            self._error = e
        self._stop.set()
        for s in self.sources:
            s.stop()

    # ------------------------------------------------------------------ iteration
    def __iter__(self):
        return self

    def __next__(self) -> StreamItem:
        while not self._pending:
            if self._done:
                self._finish()
                raise StopIteration
            taken = self._ready.pop(self._emit_seq, None)
            if taken is not None:
                self._emit_seq += 1
                self._untaken.release()  # this batch is the caller's now: the dispatcher may submit another
                self._pending = taken
                continue
            got = self._out.get()  # an interrupt here leaves the stream intact: iterate again to drain
            if got is _END:
                self._done = True
                # every batch has called back before _END: emit what is left in order
                for seq in sorted(self._ready):
                    self._pending.extend(self._ready.pop(seq))
                continue
            seq, items = got
            self._ready[seq] = items
        item = self._pending.pop(0)
        self.stats.frames_out += 1
        return item

    def _finish(self) -> None:
        self.stats.finished = self.stats.finished or time.perf_counter()
        self.close()
        if self._error is not None:
            err, self._error = self._error, None
            if isinstance(err, (EdgeDetError, KeyboardInterrupt)):
                raise err
            raise EdgeDetError(f"streaming failed: {type(err).__name__}: {err}") from err

    def stop(self) -> None:
        """Stop reading; frames already read still come out of the iterator."""
        self._stop.set()
        for s in self.sources:
            s.stop()

    def close(self) -> None:
        self._closed.set()  # a dispatcher waiting for the caller to take batches gives up
        self.stop()
        for t in self._readers:
            t.join(timeout=5)
        if self._dispatcher.is_alive():
            # unblock a dispatcher waiting for frames that will not come
            try:
                self._in.put_nowait(_END)
            except queue.Full:
                pass
            self._dispatcher.join(timeout=5)
        self._aq.close()
        for s in self.sources:
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
