"""The Triton client runner against a real Triton Inference Server (tritonserver 2.51 from nvidia-pytriton, started
by the tests, serving the model of a repository written by `edgedet export --format triton` through Triton's python
backend with the repository's tensors, batching and manifest parameter; see triton_server.py for what that pip
build cannot load): the Detector's contract over gRPC and HTTP (same detections as the local artifact, batches,
threads sharing one Detector, streaming), the manifest carried by the server's config, one clear error for each
bad source."""

import json
import os
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc")
pytest.importorskip("tritonclient.http")

from edgedet.cli import main  # noqa: E402
from edgedet.errors import ArtifactError, InputError  # noqa: E402
from edgedet.runtimes import Detector  # noqa: E402
from tests.servers import free_ports, wait_until_ok  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SERVER_PY = REPO / os.environ.get("TRITON_VENV", ".venv-triton") / "bin" / "python"
SCHEMES = ("grpc", "http")


@pytest.fixture(scope="module")
def repository(tmp_path_factory, test_weights):
    repo = tmp_path_factory.mktemp("triton_repo")
    assert (
        main(
            [
                "export",
                "--model",
                "test",
                "--weights",
                str(test_weights),
                "--format",
                "triton",
                "--backend",
                "onnxruntime",
                "--max-batch",
                "8",
                "--out",
                str(repo),
            ]
        )
        == 0
    )
    return repo


@pytest.fixture(scope="module")
def server(repository, tmp_path_factory):
    if not SERVER_PY.is_file():
        pytest.skip(f"no Triton server environment at {SERVER_PY.parent.parent} (make triton-server)")
    http, grpc, metrics = free_ports(3)
    proc = subprocess.Popen(
        [
            str(SERVER_PY),
            str(REPO / "tests" / "integrations" / "triton_server.py"),
            str(repository),
            "test",
            "--http",
            str(http),
            "--grpc",
            str(grpc),
            "--metrics",
            str(metrics),
            "--workspace",
            str(tmp_path_factory.mktemp("triton") / "workspace"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    try:
        # Triton's model-ready endpoint: its own log and the script's READY line share one pipe
        wait_until_ok(f"http://127.0.0.1:{http}/v2/models/test/ready", proc, 180, lambda: "".join(lines)[-3000:])
        yield {"grpc": f"grpc://127.0.0.1:{grpc}/test", "http": f"http://127.0.0.1:{http}/test", "grpc_port": grpc}
    finally:  # also when it never got ready: no server outlives the tests
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def local(repository):
    with Detector.load(repository / "test" / "1" / "model.onnx") as det:
        yield det


def _same(got, want):
    assert got.class_ids.tolist() == want.class_ids.tolist() and got.labels == want.labels
    np.testing.assert_allclose(got.xyxy, want.xyxy, atol=1e-4)
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-6)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_same_detections_as_the_local_artifact(server, local, images, scheme):
    with Detector.load(server[scheme]) as det:
        assert det.backend == "triton" and "triton" in det.device
        assert det.manifest.input == local.manifest.input and det.manifest.class_names == local.manifest.class_names
        for got, want in zip(det(images), local(images)):  # one batch of 3
            _same(got, want)
        _same(det(images[1]), local(images[1]))
        assert sum(len(d) for d in det(images)) > 0


@pytest.mark.parametrize("scheme", SCHEMES)
def test_threads_sharing_one_detector_get_their_own_images(server, local, images, scheme):
    rng = np.random.default_rng(3)
    crops = []
    for i in range(24):
        img = images[i % 3]
        h, w = img.shape[:2]
        y, x = rng.integers(0, h // 3), rng.integers(0, w // 3)
        crops.append(np.ascontiguousarray(img[y : y + h // 2, x : x + w // 2]))
    with Detector.load(server[scheme]) as det, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(det, crops))
    for crop, got in zip(crops, answers):
        _same(got, local(crop))


def test_stream_over_a_folder(server, local, images, tmp_path):
    for i, img in enumerate(images * 2):
        cv2.imwrite(str(tmp_path / f"{i}.png"), img)
    with Detector.load(server["grpc"]) as det:
        items = list(det.stream(str(tmp_path)))
    assert len(items) == 6
    for _index, frame, dets in items:
        _same(dets, local(frame))


def test_manifest_path_is_checked_against_the_served_tensors(server, artifacts, repository):
    with Detector.load(server["grpc"], manifest_path=str(repository / "test")) as det:
        assert det.manifest.input.name == "images"
    with pytest.raises(ArtifactError, match=r"lacks outputs \['logits', 'deltas'\]"):
        Detector.load(server["grpc"], manifest_path=str(artifacts["openvino"]))  # host post-processing


def test_bad_sources_get_one_clear_error(server, repository):
    port = free_ports(1)[0]
    with pytest.raises(ArtifactError, match="cannot reach Triton"):
        Detector.load(f"grpc://127.0.0.1:{port}/test", timeout=5.0)
    with pytest.raises(ArtifactError, match="not ready"):
        Detector.load(server["grpc"].replace("/test", "/nosuchmodel"))
    with pytest.raises(InputError, match="not a Triton model URL"):
        Detector.load(f"grpc://127.0.0.1:{server['grpc_port']}")
    with pytest.raises(InputError, match="cannot run it"):
        Detector.load(server["grpc"], backend="onnxruntime")
    with pytest.raises(InputError, match="tritonserver --model-repository"):
        Detector.load(repository / "test" / "config.pbtxt")
    with pytest.raises(InputError, match="no backend speaks"):
        Detector.load("ftp://127.0.0.1/test")


def test_cli_detect_on_the_server(server, images, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "a.png"), images[0])
    out = tmp_path / "out.jsonl"
    assert main(["detect", "--model", server["grpc"], "--source", str(tmp_path / "a.png"), "--jsonl", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1 and len(rows[0]["boxes"]) == len(rows[0]["scores"])


def test_urls_keep_their_port_and_never_echo_credentials():
    """grpc://host:99999 wrapped silently to port 34463 (99999 mod 65536); credentials in a URL were echoed in
    error messages. No server is needed: both are refused before connecting."""
    with pytest.raises(InputError, match="port '99999' is not a port number"):
        Detector.load("grpc://127.0.0.1:99999/test")
    for url in ("grpc://admin:s3cret@127.0.0.1:8001/test", "http://admin:s3cret@127.0.0.1:8000/test"):
        with pytest.raises(InputError, match="credentials in a Triton URL") as e:
            Detector.load(url)
        assert "s3cret" not in str(e.value) and "admin" not in str(e.value)
    for url, backend in (("grpc://admin:s3cret@127.0.0.1:8001", None), ("grpc://admin:s3cret@h:1/x", "onnxruntime")):
        with pytest.raises(InputError) as e:
            Detector.load(url, backend=backend)
        assert "s3cret" not in str(e.value)
