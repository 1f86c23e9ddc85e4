"""Shared fixtures: a private artifact cache, non-trivial random weights for the tiny model, images."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

# OpenVINO's model-conversion telemetry declines itself in CI and sends otherwise, by forking a process per event
# (multiprocessing, from a worker thread) to post to Google Analytics. A fork taken while another thread holds
# glibc's resolver lock leaves that child stuck in getaddrinfo, and multiprocessing joins it at exit: a fresh-clone
# CI run finished its tests and then never exited (py-spy: backend_ga4._send_func -> getaddrinfo). Tests send none.
os.environ.setdefault("CI", "true")

REPO = Path(__file__).resolve().parents[1]
SHARED_REFERENCE = REPO.parent / "shared" / "reference" / "efficientdet_paper.json"


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    os.environ["EDGEDET_CACHE"] = str(tmp_path_factory.mktemp("edgedet-cache"))
    yield


@pytest.fixture(scope="session")
def paper_reference() -> dict:
    if SHARED_REFERENCE.is_file():
        return json.loads(SHARED_REFERENCE.read_text())
    from edgedet.info import paper_reference

    return paper_reference()


def randomize_(state: dict, seed: int = 0, class_bias: float = 3.5) -> dict:
    """Perturb every float tensor (BN stats included) so that outputs and detections are non-trivial."""
    import torch

    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in state.items():
        if not v.dtype.is_floating_point:
            out[k] = v
            continue
        v = v + 0.1 * torch.randn(v.shape, generator=g)
        if "running_var" in k:
            v = v.abs() + 0.5
        if k.endswith("class_net.predict.conv_pw.bias"):
            v = v + class_bias
        out[k] = v
    return out


@pytest.fixture(scope="session")
def test_weights(tmp_path_factory) -> Path:
    """A .pth for the tiny 'test' model whose detections have varied scores and classes."""
    import torch

    from edgedet.model import create_model

    torch.manual_seed(0)
    model = create_model("test")
    path = tmp_path_factory.mktemp("weights") / "test_random.pth"
    torch.save(randomize_(model.state_dict()), path)
    return path


@pytest.fixture(scope="session")
def images() -> list[np.ndarray]:
    import cv2

    try:
        from skimage import data
    except ImportError:  # the lent GPU machine has no scikit-image: synthetic scenes of the same sizes instead
        from edgedet.data.synthetic import render_image

        return [render_image(np.random.default_rng(i), [], s)[0] for i, s in enumerate((512, 400, 300))]
    photos = [data.astronaut(), data.coffee(), data.chelsea()]
    return [cv2.cvtColor(p, cv2.COLOR_RGB2BGR) for p in photos]


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory, test_weights):
    """Tiny-model artifacts on every CPU backend, exported once per session."""
    from edgedet.converters.pipeline import BuildRequest, export_artifact

    out = tmp_path_factory.mktemp("artifacts")
    w = str(test_weights)
    requests = {
        "torch": (BuildRequest("test", "torch", weights=w), "torch"),
        "onnx": (BuildRequest("test", "onnx", weights=w), "onnx"),
        "onnx_graph": (BuildRequest("test", "onnx", weights=w, postprocess="graph"), "graph"),
        "onnx_dynamic": (BuildRequest("test", "onnx", weights=w, batch="dynamic", max_batch=8), "dynamic"),
        "openvino": (BuildRequest("test", "openvino", weights=w), "ov"),
        "openvino_graph": (BuildRequest("test", "openvino", weights=w, postprocess="graph"), "ovg"),
    }

    class Artifacts(dict):  # each exported on first use: a machine without OpenVINO still gets the torch/ONNX ones
        def __missing__(self, key):
            req, folder = requests[key]
            self[key] = export_artifact(req, out / folder)
            return self[key]

    return Artifacts()


@pytest.fixture
def small_fs(tmp_path):
    """A real, nearly full filesystem: a size-limited tmpfs mounted for the test (needs root, as on the CI
    machines). Yields (folder, fill) where fill(left_bytes) leaves about that many bytes free."""
    import subprocess

    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); the ENOSPC double tests cover this path")

    def fill(left: int) -> None:
        st = os.statvfs(mnt)
        free = st.f_bavail * st.f_frsize
        with open(mnt / "filler.bin", "wb") as f:
            f.write(b"\0" * max(0, free - left))

    try:
        yield mnt, fill
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
