"""A runner that is not thread-safe (TensorRT: one execution context and one buffer set) is never entered by
two threads at once: the Detector serialises calls, the streaming queue keeps one request in flight. A shared
Detector gives every thread its own images' results."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from edgedet.runtimes import Detector
from edgedet.runtimes.base import Runner


class ReentryDetector(Runner):
    """Wraps a real runner; fails if a second thread enters while one is inside."""

    name = "reentry-double"
    thread_safe = False

    def __init__(self, inner):
        self.inner, self.path, self.manifest = inner, inner.path, inner.manifest
        self.input_name, self.output_names = inner.input_name, inner.output_names
        self._inside = threading.Lock()
        self.calls = 0

    @property
    def device(self):
        return "CPU (double)"

    def __call__(self, inputs):
        if not self._inside.acquire(blocking=False):
            raise AssertionError("runner entered by two threads at once")
        try:
            time.sleep(0.005)  # widen the window a race would need
            self.calls += 1
            return {k: np.array(v) for k, v in self.inner(inputs).items()}
        finally:
            self._inside.release()


@pytest.fixture
def shared(artifacts):
    inner = Detector.load(artifacts["onnx"]).runner
    return Detector(ReentryDetector(inner), inner.manifest, score_threshold=0.3)


def test_detector_serialises_a_non_thread_safe_runner(shared, images):
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: shared(images[i % 3]), range(24)))
    assert shared.runner.calls == 24
    for i, r in enumerate(results):
        ref = results[i % 3]
        np.testing.assert_array_equal(r.xyxy, ref.xyxy)


def test_stream_queue_respects_the_runner(shared):
    queue = shared.runner.async_queue(jobs=4)
    assert queue.capacity == 1
    x = np.zeros((1, 3, 128, 128), np.float32)
    done = []
    for _ in range(6):
        queue.submit({shared.input_name: x}, lambda out: done.append(1))
    queue.close()
    assert len(done) == 6


@pytest.mark.parametrize("key", ["onnx", "openvino"])
def test_shared_detector_returns_each_threads_own_results(artifacts, images, key):
    """Issue 16 #2: four threads on one Detector get exactly what sequential calls give."""
    opts = {"inference_precision": "f32"} if key == "openvino" else {}
    det = Detector.load(artifacts[key], **opts)
    frames = [np.roll(images[i % 3], 17 * i, axis=1) for i in range(12)]
    expected = [det(f, score_threshold=0.3) for f in frames]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            got = list(pool.map(lambda f: det(f, score_threshold=0.3), frames))
            for g, e in zip(got, expected):
                np.testing.assert_array_equal(g.class_ids, e.class_ids)
                np.testing.assert_allclose(g.xyxy, e.xyxy, atol=1e-4)
