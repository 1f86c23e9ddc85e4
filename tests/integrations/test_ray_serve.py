"""Ray Serve: a local deployment answers 50 concurrent requests with the local Detector's detections, batches them
with @serve.batch, answers bad requests with a 4xx and one message and keeps serving; `edgedet serve` starts,
answers and stops cleanly on SIGTERM (the Ctrl-C path)."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("ray.serve")

from edgedet.integrations.ray_serve import ServeClient, detector_app  # noqa: E402
from edgedet.runtimes import Detector  # noqa: E402
from tests.servers import free_ports, wait_until_ok  # noqa: E402

READ_TIMEOUT_S = 3.0  # the served app's read deadline


def _wait_healthy(url: str, proc=None) -> None:
    """Serve's HTTP proxy learns a new application's route after serve.run returns: wait until /health answers
    before the first real request."""
    wait_until_ok(f"{url}/health", proc, 120)


@pytest.fixture(scope="module")
def served(local_ray, artifacts):
    from ray import serve

    port = free_ports(1)[0]
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    app = detector_app(
        artifacts["onnx_dynamic"],
        max_batch=8,
        batch_wait_s=0.02,
        score_threshold=0.3,
        cpus_per_replica=0.5,
        max_bytes=2_000_000,
        read_timeout_s=READ_TIMEOUT_S,
    )
    serve.run(app, name="edgedet-test", route_prefix="/")
    _wait_healthy(f"http://127.0.0.1:{port}")
    yield f"http://127.0.0.1:{port}", artifacts["onnx_dynamic"]
    serve.shutdown()


def _post(url: str, body: bytes, ctype: str, method: str = "POST"):
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_fifty_concurrent_requests_get_the_local_detections_in_batches(served, images):
    url, artifact = served
    client = ServeClient(url)
    rng = np.random.default_rng(1)
    crops = []
    for i in range(50):
        img = images[i % len(images)]
        h, w = img.shape[:2]
        y, x = rng.integers(0, h // 3), rng.integers(0, w // 3)
        crops.append(np.ascontiguousarray(img[y : y + h // 2, x : x + w // 2]))
    before = client.health()["batches"]
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(client.detect, crops))
    det = Detector.load(artifact, score_threshold=0.3)
    for crop, got in zip(crops, answers):
        want = det(crop)
        assert got.class_ids.tolist() == want.class_ids.tolist() and got.labels == want.labels
        np.testing.assert_allclose(got.xyxy, want.xyxy, atol=0.006)  # JSON boxes are rounded to 0.01 px
        np.testing.assert_allclose(got.scores, want.scores, atol=1e-5)
    assert sum(len(a) for a in answers) > 0
    health = client.health()
    assert health["status"] == "ok" and health["requests"] >= 50
    assert health["batches"] - before < 50  # @serve.batch put several requests in one Detector call


def test_bad_requests_get_a_4xx_and_the_replica_keeps_serving(served, images):
    url, _ = served
    status, body = _post(url + "/detect", b"this is not an image", "image/jpeg")
    assert status == 400 and "cannot read image" in body["error"]
    status, body = _post(url + "/detect", b"{}", "application/json")
    assert status == 415 and "Content-Type" in body["error"]
    status, body = _post(url + "/detect", b"\0" * 3_000_000, "image/png")
    assert status == 413 and "over the limit" in body["error"]
    status, body = _post(url + "/detect", b"", "image/png")
    assert status == 400 and "empty" in body["error"]
    assert _post(url + "/nowhere", b"", "image/png")[0] == 404
    with pytest.raises(urllib.error.HTTPError, match="405"):
        urllib.request.urlopen(url + "/detect", timeout=30)  # GET on POST /detect
    assert _post(url + "/health", b"x", "image/png")[0] == 405
    ok, png = cv2.imencode(".png", images[0])
    status, body = _post(url + "/detect", png.tobytes(), "image/png")
    assert status == 200 and body["width"] == images[0].shape[1] and len(body["boxes"]) == len(body["scores"])


def test_metadata_is_the_manifest_without_local_paths(served):
    """GET /metadata gave the build machine's absolute weights path; local paths are now file names."""
    url, artifact = served
    from edgedet.manifest import Manifest

    meta = ServeClient(url).metadata()
    full = json.loads(json.dumps(Manifest.read(artifact).to_dict()))
    assert Path(full["weights"]["source"]).is_absolute()
    assert meta["weights"]["source"] == Path(full["weights"]["source"]).name
    full["weights"]["source"] = meta["weights"]["source"]
    assert meta == full
    assert str(Path(artifact).parent) not in json.dumps(meta)


def test_cli_serves_and_stops_on_sigterm(artifacts, images):
    """SIGTERM (docker stop, systemd) takes the Ctrl-C path, although ray.init installs its own handler."""
    port = free_ports(1)[0]
    env = {**os.environ, "RAY_ADDRESS": "local"}  # a new local cluster, never one that another job started
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgedet",
            "serve",
            "--model",
            str(artifacts["onnx"]),
            "--port",
            str(port),
            "--max-batch",
            "1",
            "--cpus-per-replica",
            "0.5",
            "--max-mb",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.time() + 120
        # printed once serve.run returned; looked for anywhere, since Ray's own log lines share stderr and can
        # interleave mid-line
        while f"GET http://127.0.0.1:{port}/metadata (Ctrl-C stops)" not in "".join(lines):
            assert proc.poll() is None, "".join(lines)[-2000:]
            assert time.time() < deadline, "edgedet serve did not say it was serving in 120 s"
            time.sleep(0.5)
        _wait_healthy(f"http://127.0.0.1:{port}", proc)
        client = ServeClient(f"http://127.0.0.1:{port}", timeout=30)
        assert client.health()["status"] == "ok"
        want = Detector.load(artifacts["onnx"])(images[1])
        assert client.detect(images[1]).class_ids.tolist() == want.class_ids.tolist()
        # the proxy of its own Ray stops reading a chunked flood at --max-mb (1 MB here)
        taken, answer = _flood(port)
        assert answer.startswith(b"HTTP/1.1 413") and taken < 64, (taken, answer[:200])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0, "".join(lines)[-2000:]
        reader.join(timeout=10)
        assert "edgedet serve: stopping" in "".join(lines)
        with pytest.raises(OSError):
            client.health()  # the server is gone
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cli_refuses_a_missing_artifact_and_a_busy_port(artifacts, capsys):
    from edgedet.cli import main

    assert main(["serve", "--model", "missing.onnx"]) == 2
    assert "missing.onnx" in capsys.readouterr().err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", "--model", str(artifacts["onnx"]), "--port", str(port)]) == 2
    assert "choose another --port" in capsys.readouterr().err


# ---------------------------------------------------------------- hostile clients (issue 27)
HEADERS = b"POST /detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _slow_body(port: int, chunked: bool) -> tuple[float, bytes]:
    """A request that promises a body and sends 100 bytes of it, then nothing: (seconds until the server closed
    the connection, what it answered)."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        t0 = time.perf_counter()
        if chunked:
            s.sendall(HEADERS + b"Transfer-Encoding: chunked\r\n\r\n64\r\n" + b"x" * 100 + b"\r\n")
        else:
            s.sendall(HEADERS + b"Content-Length: 100000\r\n\r\n" + b"x" * 100)
        s.settimeout(60)
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except TimeoutError:
            answer += b"<still open after 60 s>"
        return time.perf_counter() - t0, answer


def test_slow_bodies_are_closed_at_the_read_deadline_and_do_not_stall_detect(served, images):
    """64 connections that promise a body and send 100 bytes of it (half chunked) used to stall /detect and
    /health for as long as they stayed open. Now a normal request is answered within 2 s meanwhile, the replica's
    memory stays bounded, and each slow connection gets 408 and is closed at the read deadline, counted."""
    url, _ = served
    client = ServeClient(url, timeout=30)
    before = client.health()
    with ThreadPoolExecutor(64) as pool:
        slow = [pool.submit(_slow_body, _port(url), i % 2 == 1) for i in range(64)]
        time.sleep(1.0)  # every slow request has reached the replica
        t0 = time.perf_counter()
        got = client.detect(images[0])
        normal_s = time.perf_counter() - t0
        during = client.health()
        results = [f.result() for f in slow]
    after = client.health()
    assert (
        normal_s < 2.0
        and got.class_ids.tolist() == Detector.load(served[1], score_threshold=0.3)(images[0]).class_ids.tolist()
    )
    assert during["reading"] >= 60  # the slow ones were being read meanwhile
    for seconds, answer in results:
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"connection: close" in answer.lower()
        assert READ_TIMEOUT_S - 0.5 < seconds < READ_TIMEOUT_S + 3.0, seconds  # closed at the deadline
    assert after["refused"]["read_timeout"] - before["refused"]["read_timeout"] == 64
    assert after["reading"] == 0 and after["body_bytes"] == 0
    assert during["rss_mb"] - before["rss_mb"] < 64 and after["rss_mb"] - before["rss_mb"] < 64


def test_bombs_get_413_quickly_and_cost_the_replica_nothing(served):
    """A 630-byte JPEG declaring 30000x30000 (16.8 s and 5.6 GB in a replica) and an image over OpenCV's own
    limit (a plain-text 500) are answered 413 with one JSON message."""
    from tests.hostile import jpeg_bomb, png_header_only

    url, _ = served
    before = ServeClient(url).health()
    for body in (jpeg_bomb(), png_header_only(40000, 40000)):
        t0 = time.perf_counter()
        status, answer = _post(url + "/detect", body, "image/jpeg")
        assert time.perf_counter() - t0 < 1.0  # the round trip; the refusal itself is timed in-process below
        assert status == 413 and "pixel budget" in answer["error"]
    after = ServeClient(url).health()
    assert after["refused"]["image_too_large"] - before["refused"]["image_too_large"] == 2
    assert after["rss_mb"] - before["rss_mb"] < 50


def _flood(port: int, megabytes: int = 1024) -> tuple[int, bytes]:
    """A chunked upload of `megabytes` 1 MB chunks at full speed: (MB the server took before it stopped reading,
    its answer)."""
    chunk = b"%x\r\n" % (1 << 20) + b"\0" * (1 << 20) + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(HEADERS + b"Transfer-Encoding: chunked\r\n\r\n")
        try:
            while sent < megabytes:
                s.sendall(chunk)
                sent += 1
        except OSError:  # reset by the server: it stopped reading
            pass
        s.settimeout(30)
        return sent, s.recv(4096)


def _request(body: bytes, ctype: str = "image/jpeg"):
    """A starlette Request of POST /detect whose body arrives in one message."""
    from starlette.requests import Request

    sent = []

    async def receive():
        if sent:
            return {"type": "http.disconnect"}
        sent.append(1)
        return {"type": "http.request", "body": body, "more_body": False}

    headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]
    return Request({"type": "http", "method": "POST", "path": "/detect", "headers": headers}, receive)


class _Chunks:
    """An ASGI receive of a chunked body: `n` chunks of 1 MB (no Content-Length), counting what was pulled."""

    def __init__(self, n: int):
        self.n, self.pulled = n, 0

    async def __call__(self):
        if self.pulled >= self.n:
            return {"type": "http.disconnect"}
        self.pulled += 1
        return {"type": "http.request", "body": b"\0" * (1 << 20), "more_body": self.pulled < self.n}


def test_the_replica_cuts_a_chunked_body_at_the_cap_while_reading(artifacts):
    """A chunked upload has no Content-Length: it was read whole (1 GB buffered) before the 413. The replica now
    stops pulling at the cap (2 MB here) and answers 413 with Connection: close."""
    import asyncio

    from starlette.requests import Request

    from edgedet.integrations.ray_serve import DetectorServer

    server = DetectorServer(str(artifacts["onnx"]), max_batch=1, max_bytes=2 << 20)
    body = _Chunks(200)
    scope = {"type": "http", "method": "POST", "path": "/detect", "headers": [(b"content-type", b"image/png")]}
    response = asyncio.run(server(Request(scope, body)))
    assert body.pulled <= 3, f"the replica pulled {body.pulled} MB of a 2 MB cap"
    assert response.status_code == 413 and response.headers["connection"] == "close"
    assert server.refused["body_too_large"] == 1 and server.body_bytes == 0


def test_the_proxy_guard_stops_reading_at_the_cap_and_the_deadline():
    """BodyGuard (in front of Ray's proxy, where the body is read off the socket): a chunked flood is answered 413
    once past the cap and the proxy behind it hears a disconnect; a body that stops coming gets 408 at the
    deadline; a Content-Length over the cap is answered before the proxy sees the request."""
    import asyncio

    from edgedet.integrations.ray_serve import BodyGuard

    async def proxy(scope, receive, send):  # reads the whole body as Ray's proxy does, then answers 200
        while (msg := await receive())["type"] == "http.request" and msg.get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def run(receive, headers=()):
        sent = []

        async def send(msg):
            sent.append(msg)

        guard = BodyGuard(proxy, max_bytes=2 << 20, read_timeout_s=0.5)
        asyncio.run(
            guard({"type": "http", "method": "POST", "path": "/detect", "headers": list(headers)}, receive, send)
        )
        start = [m for m in sent if m["type"] == "http.response.start"]
        assert len(start) == 1  # one answer: the proxy's own, after the disconnect it heard, is dropped
        return start[0]["status"], dict(start[0]["headers"]), sent

    flood = _Chunks(1024)
    status, headers, _ = run(flood)
    assert status == 413 and headers[b"connection"] == b"close" and flood.pulled <= 3

    async def stalls():
        await asyncio.sleep(3600)

    t0 = time.perf_counter()
    status, headers, _ = run(stalls)
    assert status == 408 and headers[b"connection"] == b"close" and time.perf_counter() - t0 < 2.0
    assert run(_Chunks(0), [(b"content-length", str(3 << 20).encode())])[0] == 413
    assert run(_Chunks(1))[0] == 200  # within the limits: passed through


def test_the_replica_refuses_a_bomb_in_under_100_ms_and_50_mb(artifacts):
    """The replica's own refusal (DetectorServer, no Ray, no network), timed and measured around the call."""
    import asyncio

    from edgedet.integrations.ray_serve import DetectorServer
    from tests.hostile import jpeg_bomb, refusal_cost

    server = DetectorServer(str(artifacts["onnx"]), max_batch=1)
    with refusal_cost() as cost:
        response = asyncio.run(server(_request(jpeg_bomb())))
    assert response.status_code == 413 and b"pixel budget" in response.body
    assert cost["seconds"] < 0.1 and cost["heap_mb"] < 50 and cost["rss_mb"] < 50, cost


@pytest.fixture(scope="module")
def tight(served, artifacts):
    """A second application on the same Serve: one /detect in flight per replica, and batches that wait 1.5 s to
    fill (they never do: max_inflight 1 < max_batch 2), so the replica stays saturated for 1.5 s a request."""
    from ray import serve

    url, _ = served
    app = detector_app(
        artifacts["onnx_dynamic"], max_batch=2, batch_wait_s=1.5, cpus_per_replica=0.5, max_inflight=1, max_ongoing=8
    )
    serve.run(app, name="edgedet-tight", route_prefix="/tight")
    _wait_healthy(url + "/tight")
    yield url + "/tight"
    serve.delete("edgedet-tight")


def test_a_saturated_replica_answers_503_with_retry_after_and_health_still_answers(tight, images):
    ok, png = cv2.imencode(".png", images[0])

    def post():
        req = urllib.request.Request(tight + "/detect", data=png.tobytes(), headers={"Content-Type": "image/png"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, None
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Retry-After")

    with ThreadPoolExecutor(5) as pool:
        first = pool.submit(post)
        time.sleep(0.5)  # admitted, waiting for its batch
        rest = [pool.submit(post) for _ in range(4)]
        refused = [f.result() for f in rest]  # answered while the first still waits
        t0 = time.perf_counter()
        health = ServeClient(tight, timeout=30).health()
        health_s = time.perf_counter() - t0
        assert not first.done()
        assert first.result()[0] == 200
    assert refused == [(503, "1")] * 4
    assert health_s < 1.0 and health["inflight"] == 1 and health["refused"]["busy"] >= 4
