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

import cv2
import numpy as np
import pytest

pytest.importorskip("ray.serve")

from edgedet.integrations.ray_serve import ServeClient, detector_app  # noqa: E402
from edgedet.runtimes import Detector  # noqa: E402
from tests.servers import free_ports, wait_until_ok  # noqa: E402


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


def test_metadata_is_the_manifest(served):
    url, artifact = served
    from edgedet.manifest import Manifest

    meta = ServeClient(url).metadata()
    assert meta == json.loads(json.dumps(Manifest.read(artifact).to_dict()))


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
