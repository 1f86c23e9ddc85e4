"""`edgedet detect`: images, folders, videos, cameras and stream URLs in one command.

Images and folders are detected one by one (annotated copies with --save FOLDER, JSON lines with --jsonl);
videos, cameras, URLs and several sources run through the pipelined stream (annotated video with
--save out.mp4, JSON lines with --jsonl). The first Ctrl-C (or SIGTERM) stops reading, finishes the frames
already read and closes the outputs; a second one aborts."""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from pathlib import Path

from edgedet.errors import EdgeDetError, InputError

from .common import add_detector_arguments, add_nms_arguments, load_detector, nms_keywords, nonnegative, positive_float

HELP = "run detection on images, a folder, a video, a camera or a stream URL"
STILL = ("image", "folder")  # source kinds detected image by image


def add_arguments(p):
    add_detector_arguments(p)
    p.add_argument(
        "--source",
        required=True,
        action="append",
        help="image, folder, video file, camera index, rtsp/http URL or GStreamer pipeline "
        "(repeat for several streams, batched together)",
    )
    p.add_argument("--save", help="images: folder for annotated images; video/stream: annotated video (out.mp4)")
    p.add_argument("--jsonl", help="write one JSON line per image or frame (source, frame, detections)")
    p.add_argument(
        "--coco-json",
        help="images: write the detections as COCO results (image_id, category_id, bbox [x,y,w,h], score)",
    )
    p.add_argument(
        "--data",
        help="with --coco-json: the COCO annotation file whose image and category ids to use (default: numeric "
        "file stems, categories 1..C)",
    )
    p.add_argument("--json", action="store_true", help="print detections as JSON")
    add_nms_arguments(p)
    g = p.add_argument_group("video and streams")
    g.add_argument("--show", action="store_true", help="show the annotated stream in a window (q quits)")
    g.add_argument("--realtime", action="store_true", help="drop frames to stay current instead of queueing")
    g.add_argument("--reconnect", type=nonnegative, default=5, help="reconnect attempts when a live source drops")
    g.add_argument("--timeout", type=positive_float, default=10.0, help="seconds to open or read a network source")
    g.add_argument(
        "--hint",
        choices=("latency", "throughput"),
        help="performance hint for streams (default: throughput, which keeps several requests in "
        "flight, on backends that have hints)",
    )


def run(a) -> int:
    from edgedet.runtimes.sources import source_kind

    kinds = [source_kind(s) for s in a.source]  # raises for a missing path
    if len(a.source) == 1 and kinds[0] in STILL and not a.show:
        return detect_images(a, kinds[0])
    if a.coco_json or a.data:
        raise InputError("--coco-json and --data apply to images and folders (COCO results are per image)")
    return detect_stream(a)


def _hint(a) -> dict:
    """The stream's performance hint, for backends that declare one."""
    from edgedet.registry import backend_for, get_backend, remote_backend

    from .common import resolve_backend

    a.backend = resolve_backend(a)
    spec = get_backend(a.backend) if a.backend else (remote_backend(a.model) or backend_for(a.model))
    if "hint" in spec.runner_class().OPTIONS:
        return {"hint": (a.hint or "throughput").upper()}
    if a.hint:  # asked for, but this backend has no hint: say so rather than drop it silently
        print(
            f"edgedet detect: backend {spec.name} has no performance hint; --hint {a.hint} does not apply",
            file=sys.stderr,
        )
    return {}


def _output_names(files: list[Path], out_dir: Path) -> dict[Path, Path]:
    """Input -> annotated output path: never an input file, never two inputs on one output."""
    stems = {}
    for f in files:
        stems.setdefault(f.stem, []).append(f)
    inputs = {f.resolve() for f in files}
    out = {}
    for f in files:
        name = f"{f.stem}.jpg" if len(stems[f.stem]) == 1 else f"{f.stem}_{f.suffix.lstrip('.').lower()}.jpg"
        target = out_dir / name
        if target.resolve() in inputs:
            raise InputError(f"--save {out_dir} would overwrite the input {f}: choose another output folder")
        out[f] = target
    if len(set(out.values())) != len(out):
        raise InputError(f"--save {out_dir}: two inputs would be saved under one name; rename them")
    return out


def detect_images(a, kind: str) -> int:
    from edgedet.preprocess import read_image
    from edgedet.progress import progress
    from edgedet.runtimes.sinks import JsonLines, check_writable
    from edgedet.runtimes.sources import FolderSource

    src = Path(a.source[0])
    files = FolderSource(src).files if kind == "folder" else [src]
    out_dir = Path(a.save) if a.save else None
    src_dir = src if kind == "folder" else src.parent
    if out_dir is not None and out_dir.resolve() == src_dir.resolve():
        raise InputError(
            f"--save {out_dir} is the source folder: annotated images would sit among (or over) the "
            "user's images; choose another folder"
        )
    targets = _output_names(files, out_dir) if out_dir is not None else {}
    if a.jsonl:
        check_writable(a.jsonl, "--jsonl")
    if a.data and not a.coco_json:
        raise InputError("--data names the annotation file of --coco-json: give --coco-json too")
    if a.coco_json:
        check_writable(a.coco_json, "--coco-json")
    results, failures, coco = [], [], []
    with load_detector(a, **nms_keywords(a)) as det:
        coco_ids = _coco_ids(a, det)
        jsonl = JsonLines(a.jsonl) if a.jsonl else None  # opened once the model loaded: nothing left behind
        try:
            for f in progress(files, desc="detect", disable=len(files) < 5):
                try:
                    img = read_image(f)
                except EdgeDetError as e:
                    failures.append({"image": str(f), "error": str(e)})
                    print(f"skipped: {e}", file=sys.stderr)
                    continue
                d = det(img)
                results.append({"image": str(f), "detections": d.to_dict(), "ms": round(det.timing.total, 2)})
                if coco_ids is not None:
                    coco += coco_ids.results(f, d)
                if jsonl is not None:
                    jsonl.write({"source": str(f), "frame": 0, **d.to_dict()})
                if out_dir is not None:
                    _save_annotated(targets[f], img, d)
                if not a.json:
                    top = ", ".join(f"{l} {s:.2f}" for l, s in zip(d.labels[:5], d.scores[:5]))
                    print(f"{f.name}: {len(d)} detections ({det.timing.total:.1f} ms){': ' + top if top else ''}")
            if jsonl is not None:
                jsonl.close()
        finally:
            if jsonl is not None:
                jsonl.abort()
        backend, device = det.backend, det.device
    if coco_ids is not None:
        _write_coco(a, coco, coco_ids)
    if a.json:
        summary = {"model": a.model, "backend": backend, "device": device, "results": results, "skipped": failures}
        print(json.dumps(summary, indent=2))
    if failures and not results:
        first = failures[0]["error"]
        raise InputError(first if len(failures) == 1 else f"no image could be read ({len(failures)} failed)")
    return 0


def _coco_ids(a, det):
    from edgedet.evaluation import CocoIds

    return CocoIds(len(det.class_names), a.data) if a.coco_json else None


def _write_coco(a, coco: list, ids) -> None:
    from edgedet.evaluation import write_coco_results

    write_coco_results(a.coco_json, coco)
    if ids.unknown:
        print(
            f"--coco-json: {len(ids.unknown)} image(s) not in {a.data} were left out (e.g. {ids.unknown[0]})",
            file=sys.stderr,
        )
    if not a.json:
        print(f"wrote {len(coco)} detections (COCO results) to {a.coco_json}")


def _save_annotated(out: Path, img, dets) -> None:
    import cv2

    from edgedet.fileio import write_bytes_atomic
    from edgedet.visualize import draw

    ok, buf = cv2.imencode(".jpg", draw(img, dets))
    if not ok:
        raise InputError(f"cannot encode the annotated image for {out}")
    write_bytes_atomic(out, buf.tobytes())


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


class _Outputs:
    """The stream's outputs: an annotated video per source and/or one JSONL, checked before any thread starts
    and published together at the end."""

    def __init__(self, a):
        from edgedet.runtimes.sinks import check_writable

        self.paths = _video_paths(a.save, len(a.source))
        for path in self.paths:  # unusable outputs fail here, before any reader thread starts
            if path is not None:
                check_writable(path, "--save")
        if a.jsonl:
            check_writable(a.jsonl, "--jsonl")
        self.jsonl_path, self.videos, self.jsonl = a.jsonl, [], None
        self.window = _Window(a.show)
        self.rates = [_Rate() for _ in a.source]

    def open(self, stream) -> None:
        from edgedet.runtimes.sinks import JsonlSink, VideoSink

        try:
            self.videos = [VideoSink(p, fps=s.stats.fps) if p else None for p, s in zip(self.paths, stream.sources)]
            self.jsonl = JsonlSink(self.jsonl_path) if self.jsonl_path else None
        except BaseException:
            self.abort()
            raise

    def handle(self, item) -> None:
        from edgedet.visualize import draw

        fps = self.rates[item.source].tick()
        if self.jsonl:
            self.jsonl.write(item)
        sink = self.videos[item.source]
        if sink is not None or self.window.enabled:
            frame = draw(
                item.frame,
                item.detections,
                text=f"{fps:5.1f} FPS  {item.latency_ms:5.0f} ms  {len(item.detections)} det",
            )
            if sink is not None:
                sink.write(frame)
            self.window.show(f"edgedet {item.source}", frame)

    def sinks(self) -> list:
        return [v for v in self.videos if v is not None] + ([self.jsonl] if self.jsonl else [])

    def close(self) -> None:
        _publish_together(self.sinks())

    def abort(self) -> None:
        for s in self.sinks():
            s.abort()

    def written(self) -> list[str]:
        return [str(s.path) for s in self.videos if s is not None and s.frames] + (
            [str(self.jsonl.path)] if self.jsonl else []
        )

    def codecs(self) -> dict[str, str]:
        """Each written video -> the codec that wrote it (H.264 through PyAV, or OpenCV's mp4v)."""
        return {str(s.path): s.description for s in self.videos if s is not None and s.frames}


def detect_stream(a) -> int:
    from edgedet.progress import progress
    from edgedet.runtimes import CaptureOptions

    outputs = _Outputs(a)
    det = load_detector(a, **_hint(a), **nms_keywords(a))
    capture = CaptureOptions(open_timeout_s=a.timeout, read_timeout_s=a.timeout, max_reconnects=max(0, a.reconnect))
    try:
        stream = det.stream(a.source, realtime=a.realtime, capture=capture)
    except BaseException:
        det.close()
        raise
    interrupted, ok = [], False
    try:
        outputs.open(stream)
        total = sum(s.total or 0 for s in stream.sources) if all(s.total for s in stream.sources) else None
        bar = progress(total=total, desc="detect", unit="frame")

        def on_signal(signum, frame):  # first Ctrl-C/SIGTERM: stop reading and drain; a second one aborts
            if interrupted:
                raise KeyboardInterrupt
            interrupted.append(signum)
            print("\ninterrupted: finishing the frames already read (Ctrl-C again to abort) ...", file=sys.stderr)
            stream.stop()

        previous = _install(on_signal)
        try:
            for item in stream:
                outputs.handle(item)
                bar.update(1)
                if outputs.window.quit:
                    stream.stop()
            ok = True
        finally:
            _install(previous)
            bar.close()
    finally:
        stream.close()
        try:
            outputs.close() if ok else outputs.abort()  # a failed run publishes nothing
        finally:
            det.close()
    return _report_stream(a, stream, det, outputs, bool(interrupted))


def _report_stream(a, stream, det, outputs: _Outputs, interrupted: bool) -> int:
    summary = stream.stats.to_dict()
    summary.update(
        model=a.model,
        backend=det.backend,
        device=det.device,
        interrupted=interrupted,
        outputs=outputs.written(),
        video_codecs=outputs.codecs(),
    )
    if a.json:
        print(json.dumps(summary, indent=2))
    else:
        for s in summary["sources"]:
            extra = "".join(f", {s[k]} {k}" for k in ("corrupt", "reconnects") if s[k])
            print(f"{s['source']}: {s['frames_read']} frames read{extra}; ended: {s['ended'] or 'stopped'}")
        print(
            f"{summary['frames']} frames at {summary['fps']:.1f} FPS ({det.backend}, {det.device})"
            + (f", {summary['dropped']} dropped to stay real-time" if summary["dropped"] else "")
        )
        for o in summary["outputs"]:
            codec = summary["video_codecs"].get(o)
            print(f"wrote {o}" + (f" ({codec})" if codec else ""))
    if summary["frames"] == 0 and not interrupted:
        events = [e for s in summary["sources"] for e in s["events"]]
        raise InputError("no frame could be read" + (f": {events[-1]}" if events else ""))
    given_up = [s for s in summary["sources"] if (s["ended"] or "").startswith("gave up")]
    if given_up and not interrupted:  # outputs are written; the run still failed
        raise EdgeDetError(f"source {given_up[0]['source']}: {given_up[0]['ended']}")
    return 130 if interrupted else 0


def _publish_together(sinks) -> None:
    """Close (publish) every sink; if one fails, the ones not yet published are aborted, so no output is left
    beside an unrelated or incomplete partner."""
    for i, sink in enumerate(sinks):
        try:
            sink.close()
        except BaseException:
            for rest in sinks[i + 1 :]:
                rest.abort()
            raise


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
