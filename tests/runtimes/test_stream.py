"""Streaming: pipelined detections equal per-frame detections; faults end cleanly and in bounded time."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from edgedet.benchmarks.images import make_video
from edgedet.errors import EdgeDetError, InputError
from edgedet.runtimes import CaptureOptions, Detector
from edgedet.runtimes.sinks import VideoSink


def read_all(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    return frames


def assert_same(a, b):
    assert len(a) == len(b)
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("video") / "clip.mp4", 24, size=(320, 240))


@pytest.mark.parametrize("kind", ["openvino", "onnx"])
def test_stream_matches_per_frame_detection(artifacts, video, kind):
    pytest.importorskip("openvino" if kind == "openvino" else "onnxruntime")
    det = Detector.load(artifacts[kind], score_threshold=0.3)
    expected = [det(f) for f in read_all(video)]
    with det.stream(video) as s:
        got = list(s)
    assert [it.index for it in got] == list(range(len(expected)))
    assert sum(len(d) for d in expected) > 0
    for item, ref in zip(got, expected):
        index, frame, dets = item  # unpacks as (index, frame, Detections)
        assert frame.shape == (240, 320, 3)
        assert_same(dets, ref)
        assert item.latency_ms > 0
    assert s.stats.frames_out == len(expected) and s.stats.sources[0].ended == "end"


def test_several_streams_are_batched(artifacts, video):
    """Two sources through a dynamic-batch artifact: batches of 2, each frame's result matches."""
    det = Detector.load(artifacts["onnx_dynamic"], score_threshold=0.3)
    expected = [det(f) for f in read_all(video)]
    with det.stream([video, video], batch=2) as s:
        got = list(s)
    assert len(got) == 2 * len(expected)
    for src in (0, 1):
        mine = [it for it in got if it.source == src]
        assert [it.index for it in mine] == list(range(len(expected)))
        for it, ref in zip(mine, expected):
            assert_same(it.detections, ref)
    assert s.stats.batches < len(got)


def test_image_folder_source(artifacts, images, tmp_path):
    for i, im in enumerate(images):
        cv2.imwrite(str(tmp_path / f"{i}.png"), im)
    (tmp_path / "3.png").write_bytes(b"not a png")
    det = Detector.load(artifacts["onnx"])
    with det.stream(tmp_path) as s:
        got = list(s)
    assert [it.index for it in got] == [0, 1, 2]
    assert s.stats.sources[0].corrupt == 1


def test_corrupt_frames_are_skipped_and_counted(artifacts, tmp_path):
    path = make_video(tmp_path / "c.avi", 30, size=(320, 240), fourcc="MJPG")
    data = bytearray(path.read_bytes())
    soi = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    assert len(soi) == 30
    for k in (5, 17, 18):
        data[soi[k] : soi[k] + 600] = bytes(600)  # wipe the JPEG header of frames 5, 17, 18
    path.write_bytes(bytes(data))
    det = Detector.load(artifacts["onnx"])
    with det.stream(path) as s:
        got = list(s)
    st = s.stats.sources[0]
    assert st.corrupt == 3 and st.frames_read == 27 and len(got) == 27
    assert [it.index for it in got] == [i for i in range(30) if i not in (5, 17, 18)]


def test_truncated_video_ends_without_hanging(artifacts, tmp_path):
    path = make_video(tmp_path / "t.avi", 30, size=(320, 240), fourcc="MJPG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    det = Detector.load(artifacts["onnx"])
    t0 = time.perf_counter()
    with det.stream(path) as s:
        got = list(s)
    assert time.perf_counter() - t0 < 30
    assert 0 < len(got) < 30
    assert len(got) == s.stats.sources[0].frames_read


def test_zero_length_file(artifacts, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    det = Detector.load(artifacts["onnx"])
    with pytest.raises(InputError, match="empty file"):
        det.stream(empty)


@pytest.mark.parametrize(
    "url,match",
    [
        ("rtsp://127.0.0.1:1/nothing", "cannot open stream"),
        ("gopher://example/x", "unsupported URL scheme"),
        ("/no/such/video.mp4", "source not found"),
    ],
)
def test_bad_sources_fail_fast(artifacts, url, match):
    det = Detector.load(artifacts["onnx"])
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=match):
        det.stream(url, capture=CaptureOptions(open_timeout_s=3, read_timeout_s=3))
    assert time.perf_counter() - t0 < 10


class _MjpegServer:
    """A live MJPEG-over-HTTP camera that serves `per_connection` frames and then drops the connection."""

    def __init__(self, frame, per_connection: int, connections: int):
        ok, jpg = cv2.imencode(".jpg", frame)
        payload = jpg.tobytes()
        state = {"left": connections}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if state["left"] <= 0:
                    self.send_error(503)
                    return
                state["left"] -= 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                for _ in range(per_connection):
                    self.wfile.write(
                        b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(payload)
                        + payload
                        + b"\r\n"
                    )
                    time.sleep(0.005)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cam.mjpg"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_live_source_reconnects_then_gives_up(artifacts, images):
    cam = _MjpegServer(cv2.resize(images[0], (320, 240)), per_connection=12, connections=2)
    try:
        det = Detector.load(artifacts["onnx"])
        opts = CaptureOptions(open_timeout_s=3, read_timeout_s=3, max_reconnects=2, backoff_s=0.05)
        t0 = time.perf_counter()
        with det.stream(cam.url, capture=opts) as s:
            got = list(s)
        assert time.perf_counter() - t0 < 30
    finally:
        cam.close()
    st = s.stats.sources[0]
    assert st.reconnects == 1  # the second connection; the third is refused
    assert st.ended.startswith("gave up after 2")
    assert len(got) == st.frames_read >= 20  # every frame read came out (the drop may cost a frame)
    assert all(len(it.detections) == len(got[0].detections) for it in got)  # same picture every frame


def test_stop_drains_frames_already_read(artifacts, tmp_path):
    path = make_video(tmp_path / "long.mp4", 200, size=(320, 240))
    det = Detector.load(artifacts["onnx"])
    s = det.stream(path, queue_size=8)
    got = [next(s) for _ in range(5)]
    s.stop()
    got += list(s)
    assert 5 <= len(got) < 200
    assert len(got) == s.stats.sources[0].frames_read  # nothing read was lost
    assert [it.index for it in got] == list(range(len(got)))


def test_realtime_drops_frames_for_a_slow_consumer(artifacts, tmp_path):
    path = make_video(tmp_path / "rt.mp4", 80, size=(320, 240))
    det = Detector.load(artifacts["onnx"])
    got = []
    with det.stream(path, realtime=True, queue_size=2) as s:
        for item in s:
            got.append(item.index)
            time.sleep(0.02)
    assert s.stats.dropped > 0
    assert len(got) + s.stats.dropped == 80
    assert got == sorted(got)


def test_a_slow_caller_holds_the_readers(artifacts, tmp_path):
    """A caller slower than inference keeps memory flat: frames read run ahead of frames taken by at most the
    input queue (2), a frame in the reader's hand, the dispatcher's next batch, and the batches in flight plus
    one ready (ONNX Runtime, LATENCY: 1 + 1), never by the whole video; and every frame still comes out."""
    path = make_video(tmp_path / "slow.mp4", 60, size=(320, 240))
    det = Detector.load(artifacts["onnx"])
    ahead = []
    with det.stream(path, queue_size=2) as s:
        for taken, _item in enumerate(s, 1):
            time.sleep(0.03)
            ahead.append(s.stats.sources[0].frames_read - taken)
    assert taken == 60 and s.stats.dropped == 0
    assert max(ahead) <= 2 + 1 + 1 + 2, max(ahead)


def test_a_failed_request_is_raised_not_waited_for(artifacts, tmp_path, monkeypatch):
    """An inference that raises never calls back: with the caller behind, the stream raises that failure instead
    of waiting for the batch forever (the caller for the batch, the dispatcher for the caller)."""
    path = make_video(tmp_path / "fail.mp4", 40, size=(160, 120))
    det = Detector.load(artifacts["onnx"])
    runner_type, calls = type(det.runner), []
    real = runner_type.__call__

    def flaky(self, inputs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("device lost")
        return real(self, inputs)

    monkeypatch.setattr(runner_type, "__call__", flaky)
    outcome = {}

    def consume():
        try:
            with det.stream(path, queue_size=2) as s:
                for _ in s:
                    time.sleep(0.05)
        except EdgeDetError as e:
            outcome["error"] = str(e)

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "the stream hung on a failed request"
    assert "device lost" in outcome.get("error", "")


def test_inference_errors_surface(artifacts, video):
    det = Detector.load(artifacts["onnx"])

    def broken(*a, **k):
        raise RuntimeError("boom")

    det.postprocess = broken
    with pytest.raises(EdgeDetError, match="boom"):
        with det.stream(video) as s:
            list(s)


def test_sinks(tmp_path, images):
    with pytest.raises(InputError, match="must end in"):
        VideoSink(tmp_path / "out.gif")
    v = VideoSink(tmp_path / "v.mp4", fps=25)
    for i in range(5):
        v.write(cv2.resize(images[i % 3], (160, 120)))
    assert not (tmp_path / "v.mp4").exists()  # written under a temporary name until closed
    v.close()
    assert len(read_all(tmp_path / "v.mp4")) == 5


def _cli(*args, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "edgedet.cli", "detect", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_cli_video_to_mp4_and_jsonl(artifacts, video, tmp_path):
    p = _cli(
        "--model",
        artifacts["openvino"],
        "--source",
        video,
        "--save",
        tmp_path / "o.mp4",
        "--jsonl",
        tmp_path / "o.jsonl",
        "--conf",
        0.3,
        "--json",
    )
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    summary = json.loads(out)
    lines = [json.loads(l) for l in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert summary["frames"] == len(lines) == 24
    assert [l["frame"] for l in lines] == list(range(24))
    assert sum(len(l["boxes"]) for l in lines) > 0
    assert len(read_all(tmp_path / "o.mp4")) == 24


def test_cli_ctrl_c_flushes_sinks(artifacts, tmp_path):
    path = make_video(tmp_path / "long.mp4", 3000, size=(640, 480))
    p = _cli(
        "--model",
        artifacts["onnx"],
        "--source",
        path,
        "--save",
        tmp_path / "o.mp4",
        "--jsonl",
        tmp_path / "o.jsonl",
        "--json",
    )
    jsonl = tmp_path / "o.jsonl"

    def partial_size():  # outputs are written under temporary names until they are complete
        return sum(f.stat().st_size for f in tmp_path.glob(".o.jsonl.partial-*"))

    deadline = time.time() + 180
    while time.time() < deadline and partial_size() < 2000 and p.poll() is None:
        time.sleep(0.1)
    if p.poll() is not None or partial_size() < 2000:  # SIGINT before detect is under way would test nothing
        p.kill()
        pytest.fail("detect did not get going in 180 s: " + p.communicate()[1][-2000:])
    assert not jsonl.exists()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    summary = json.loads(out)
    assert summary["interrupted"] and 0 < summary["frames"] < 3000
    lines = jsonl.read_text().splitlines()
    assert len(lines) == summary["frames"] == summary["sources"][0]["frames_read"]
    assert len(read_all(tmp_path / "o.mp4")) == len(lines)
    assert not [f.name for f in tmp_path.iterdir() if f.name.startswith(".")]  # no temporary file left


def test_cli_unknown_url_is_one_line_error(artifacts):
    p = _cli("--model", artifacts["onnx"], "--source", "rtsp://127.0.0.1:1/cam", "--timeout", 2)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2
    assert "cannot open stream rtsp://127.0.0.1:1/cam" in err and "Traceback" not in err


@pytest.mark.slow
def test_soak_10k_frames_memory_flat(artifacts, tmp_path):
    """10,000 frames through stream(); resident memory after warm-up grows by less than 5%."""
    from benchmarks.studies.streaming import run_soak

    video = make_video(tmp_path / "soak.mp4", 10_000, size=(160, 120))
    det = Detector.load(artifacts["openvino"], hint="THROUGHPUT")
    res = run_soak(det, video, warmup=1000, every=500)
    assert res["frames"] == 10_000 and res["stream"]["sources"][0]["corrupt"] == 0
    assert res["rss_max_growth_pct"] < 5.0, res["samples"]


def test_reconnects_are_bounded_in_total_and_rate(tmp_path):
    """Issue 16 #10: a 'camera' that delivers a few frames and then drops, again and again (a short file opened
    as a live URL), is given up after the total cap, and after the per-window cap."""
    from edgedet.runtimes.sources import CaptureSource

    clip = make_video(tmp_path / "short.mp4", 5, size=(64, 48))
    src = CaptureSource(str(clip), "url", CaptureOptions(max_reconnects_total=3, backoff_s=0.01))
    frames = sum(1 for _ in src)
    assert src.stats.reconnects == 3 and frames == 4 * 5
    assert src.stats.ended.startswith("gave up after 3 reconnects in total")
    src = CaptureSource(str(clip), "url", CaptureOptions(max_reconnects_per_window=2, backoff_s=0.01))
    assert sum(1 for _ in src) == 3 * 5 and src.stats.ended.startswith("gave up: 2 reconnects within")


def test_a_folder_stream_counts_undecodable_images_and_goes_on(artifacts, images, tmp_path):
    """A decompression bomb and an image over OpenCV's own limit (cv2.error ended Detector.stream) are counted
    as corrupt; the stream goes on. Detector on the bomb's path refuses it in under 100 ms and 50 MB."""
    from tests.hostile import jpeg_bomb, png_header_only, refusal_cost

    cv2.imwrite(str(tmp_path / "0.png"), images[0])
    (tmp_path / "1.jpg").write_bytes(jpeg_bomb())
    (tmp_path / "2.png").write_bytes(png_header_only(40000, 40000))
    cv2.imwrite(str(tmp_path / "3.png"), images[1])
    det = Detector.load(artifacts["onnx"])
    with det.stream(tmp_path) as s:
        got = list(s)
    assert [it.index for it in got] == [0, 3]
    st = s.stats.sources[0]
    assert st.corrupt == 2 and st.frames_read == 2
    assert any("pixel budget" in e for e in st.events)
    with refusal_cost() as cost, pytest.raises(InputError, match="pixel budget"):
        det(str(tmp_path / "1.jpg"))
    assert cost["seconds"] < 0.1 and cost["heap_mb"] < 50 and cost["rss_mb"] < 50, cost


def test_video_frames_over_the_pixel_budget_are_refused_on_open(artifacts, video, monkeypatch):
    monkeypatch.setenv("EDGEDET_MAX_PIXELS", str(320 * 240 - 1))
    det = Detector.load(artifacts["onnx"])
    with pytest.raises(InputError, match="frames of 320x240 = 76800 pixels are over the pixel budget"):
        det.stream(video)
