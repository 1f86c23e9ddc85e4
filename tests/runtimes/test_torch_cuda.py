"""The verified GPU path without TensorRT: torch on CUDA (fp16, channels-last) against the CPU fp32 reference."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu

from edgedet.runtimes import Detector


@pytest.fixture(scope="module")
def cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    return "cuda"


def test_cuda_fp16_matches_cpu_fp32(cuda, artifacts, images):
    ref = Detector.load(artifacts["torch"])
    gpu = Detector.load(artifacts["torch"], device=cuda)  # fp16 + channels-last by default on CUDA
    assert "cuda" in gpu.device
    for img in images:
        a, b = gpu(img, score_threshold=0.3), ref(img, score_threshold=0.3)
        n = min(len(a), len(b), 10)
        assert n > 0 and abs(len(a) - len(b)) <= max(1, len(b) // 10)
        assert (a.class_ids[:n] == b.class_ids[:n]).mean() >= 0.8
        assert np.abs(a.scores[:n] - b.scores[:n]).max() < 0.02


def test_cuda_fp32_exact(cuda, artifacts, images):
    ref = Detector.load(artifacts["torch"])
    gpu = Detector.load(artifacts["torch"], device=cuda, half=False, channels_last=False)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    a, b = gpu(images[0], score_threshold=0.3), ref(images[0], score_threshold=0.3)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-2)


def test_cuda_batch32(cuda, artifacts, images):
    """Batch 32 gives each image its own detections: the same as one-by-one calls (FP16 tolerance)."""
    gpu = Detector.load(artifacts["torch"], device=cuda)
    frames = [np.roll(images[i % len(images)], 9 * i, axis=1) for i in range(32)]
    out = gpu(frames, score_threshold=0.3)
    assert len(out) == 32
    for frame, got in zip(frames, out):
        ref = gpu(frame, score_threshold=0.3)
        n = min(len(got), len(ref), 10)
        assert n > 0 and abs(len(got) - len(ref)) <= max(1, len(ref) // 10)
        np.testing.assert_array_equal(got.class_ids[:n], ref.class_ids[:n])
        np.testing.assert_allclose(got.xyxy[:n], ref.xyxy[:n], atol=2.0)


def test_cuda_graph_replay_matches_eager(cuda, artifacts, images):
    eager = Detector.load(artifacts["torch"], device=cuda)
    graph = Detector.load(artifacts["torch"], device=cuda, cuda_graph=True)
    for img in images + images:  # replays after the first capture
        a, b = graph(img, score_threshold=0.3), eager(img, score_threshold=0.3)
        np.testing.assert_array_equal(a.class_ids, b.class_ids)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-3)
    assert len(graph([images[0], images[1]])) == 2  # a new shape is captured again


def test_device_time_is_measured_apart_from_copies(cuda, artifacts, images):
    det = Detector.load(artifacts["torch"], device=cuda)
    batch = det.preprocess([images[0]])[0].copy()
    ms = det.runner.device_time_ms({det.input_name: batch}, iters=10, warmup=3)
    assert len(ms) == 10 and all(0 < t < 1000 for t in ms)
