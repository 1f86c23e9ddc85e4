"""The TensorRT runner's CUDA side on a real GPU, without TensorRT: a fake engine (tests/trt_double.py) whose
execute_async_v3 launches a cupy kernel (y = 2x + 1) on the stream the runner passes, over the device buffers the
runner allocated with cuda-python. Checks the buffer handling (pinned host <-> device copies, re-planning on a new
shape, freeing) and CUDA-graph capture and replay (the graph replays the kernel on new inputs without calling
execute_async_v3 again)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytestmark = pytest.mark.gpu
cupy = pytest.importorskip("cupy")
pytest.importorskip("cuda.bindings.runtime", reason="cuda-python (edgedet[tensorrt]) is needed for CUDA memory")


@pytest.fixture(scope="module")
def gpu():
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA GPU")
    except cupy.cuda.runtime.CUDARuntimeError as e:
        pytest.skip(f"no CUDA GPU: {e}")
    from edgedet.cuda import device_properties

    return device_properties(0)


AFFINE = None


def _kernel(stream, addresses, shape):
    """y = 2x + 1 on the runner's stream, over the runner's buffers (no allocation: capturable)."""
    global AFFINE
    if AFFINE is None:
        AFFINE = cupy.ElementwiseKernel("float32 x", "float32 y", "y = 2 * x + 1", "edgedet_fake_engine")
    n = int(np.prod(shape))

    def view(ptr):
        mem = cupy.cuda.UnownedMemory(int(ptr), n * 4, None, 0)  # device given: no pointer query in capture
        return cupy.ndarray(shape, cupy.float32, cupy.cuda.MemoryPointer(mem, 0))

    with cupy.cuda.ExternalStream(int(stream)):
        AFFINE(view(addresses["images"]), view(addresses["out"]))


@pytest.fixture
def runner_factory(gpu, artifacts, tmp_path, monkeypatch):
    from edgedet.devices import Device
    from edgedet.manifest import Manifest
    from edgedet.runtimes.tensorrt_runner import TensorRTRunner
    from tests.trt_double import Engine, add_runtime, make_trt

    trt = add_runtime(make_trt("10.13.3"), lambda t: Engine(t, _kernel, profile=(1, 8)))
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    engine = tmp_path / "fake.engine"
    engine.write_bytes(b"plan")
    m = Manifest.read(artifacts["onnx"]).derive(device={**gpu, "tensorrt": "10.13.3", "dla_core": None})
    made = []

    def make(**options):
        made.append(TensorRTRunner(engine, m, Device("cuda", 0), **options))
        return made[-1]

    yield make
    for r in made:
        r.close()


def test_buffers_copies_and_shape_changes(runner_factory):
    runner = runner_factory()
    rng = np.random.default_rng(0)
    for batch in (2, 2, 5, 1):
        x = rng.standard_normal((batch, 3, 8, 8)).astype(np.float32)
        np.testing.assert_allclose(runner({"images": x})["out"], 2 * x + 1, rtol=1e-6)
    assert len(runner._buffers) == 2 and runner._shape == (1, 3, 8, 8)
    ms = runner.device_time_ms({"images": np.zeros((1, 3, 8, 8), np.float32)}, iters=5, warmup=1)
    assert len(ms) == 5 and all(t >= 0 for t in ms)


def test_cuda_graph_replays_the_kernel_on_new_inputs(runner_factory):
    runner = runner_factory(cuda_graph=True)
    rng = np.random.default_rng(1)
    for _ in range(4):
        x = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
        np.testing.assert_allclose(runner({"images": x})["out"], 2 * x + 1, rtol=1e-6)
    assert runner.use_graph and runner._graph is not None
    # one plain run before capture, one call inside the capture; the other calls were graph replays
    assert runner.context.runs == 2
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)  # a new shape: captured again
    np.testing.assert_allclose(runner({"images": x})["out"], 2 * x + 1, rtol=1e-6)
    assert runner.context.runs == 4
