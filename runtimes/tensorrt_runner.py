"""TensorRT runner: named-tensor API (set_input_shape / set_tensor_address / execute_async_v3) on a
non-default stream, pinned host buffers, optional CUDA graph replay for a fixed shape.

One execution context, stream and buffer set per runner: not thread-safe (thread_safe = False), so the
Detector serialises calls and the streaming queue keeps one request in flight.

The engine must match this machine: the manifest records GPU, compute capability and TensorRT version,
checked before deserialising (a plan from another GPU or TensorRT version is refused with a clear
message; through the artifact cache it is rebuilt from the ONNX instead).
"""

from __future__ import annotations

import numpy as np

from edgedet.cuda import cuda_backend
from edgedet.errors import ArtifactError, InputError
from edgedet.options import Option
from edgedet.tensorrt_lib import check_engine_device, import_tensorrt, logger

from .base import Runner


class TensorRTRunner(Runner):
    name = "tensorrt"
    thread_safe = False
    OPTIONS = {
        "cuda_graph": Option(
            bool, False, help="capture and replay a CUDA graph per input shape (engines with host post-processing only)"
        )
    }

    def __init__(self, path, manifest, device, cuda_graph=False):
        super().__init__(path, manifest, device)
        if cuda_graph and manifest.postprocess.in_graph:
            raise InputError(
                "cuda_graph cannot be used with in-graph NMS: NonMaxSuppression has a "
                "data-dependent output shape, which CUDA graphs cannot capture; build the engine with "
                "--postprocess host to use CUDA graphs"
            )
        if cuda_graph and self._dla_core(manifest) is not None:
            raise InputError(
                "cuda_graph cannot be used with a DLA engine: DLA work is not captured in CUDA graphs "
                '(trtexec: "CUDA graphs and DLA offloading are not simultaneously supported"); run it without cuda_graph'
            )
        import_tensorrt()
        import tensorrt as trt  # loaded by import_tensorrt(); typed for mypy (see edgedet.tensorrt_lib)

        self.trt = trt
        self.cuda = cuda_backend(device.ordinal)
        try:
            self._open_engine(trt, manifest, device)
        except BaseException:
            self.cuda.close()  # the stream (and context) made above is released on a failed load
            raise
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.use_graph = cuda_graph
        self._shape = None
        self._graph = None
        self._buffers: dict[str, tuple[np.ndarray, int]] = {}

    @staticmethod
    def _dla_core(manifest) -> int | None:
        core = (manifest.device or {}).get("dla_core")
        return None if core is None else int(core)

    def _open_engine(self, trt, manifest, device) -> None:
        check_engine_device(manifest.device, self.cuda.device_properties(device.ordinal), trt.__version__)
        self.runtime = trt.Runtime(logger(trt))
        core = self._dla_core(manifest)
        if core is not None:  # the DLA core the engine runs on is chosen at deserialization (runtime.DLA_core)
            self.runtime.DLA_core = core
        self.engine = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise ArtifactError(
                f"TensorRT {trt.__version__} cannot deserialize {self.path.name}: truncated, "
                "or built by another TensorRT version; rebuild it with 'edgedet build'"
            )
        self.context = self.engine.create_execution_context()

    @property
    def device(self) -> str:
        return f"cuda:{self.device_spec.ordinal} ({(self.manifest.device or {}).get('gpu', '?')})"

    @property
    def input_shape(self):
        return [d if d >= 0 else None for d in self.engine.get_tensor_shape(self.inputs[0])]

    def batch_range(self) -> tuple[int, int]:
        name = self.inputs[0]
        shape = self.engine.get_tensor_shape(name)
        if shape[0] >= 0:
            return shape[0], shape[0]
        lo, _, hi = self.engine.get_tensor_profile_shape(name, 0)
        return lo[0], hi[0]

    def _prepare(self, shape: tuple[int, ...]) -> None:
        lo, hi = self.batch_range()
        if not lo <= shape[0] <= hi:
            raise InputError(
                f"batch {shape[0]} is outside the engine's profile {lo}..{hi}; rebuild with --max-batch {shape[0]}"
            )
        name = self.inputs[0]
        self._free_buffers()  # a new shape: release the previous shape's buffers before allocating
        if not self.context.set_input_shape(name, shape):
            raise InputError(f"TensorRT refused input shape {shape} for {name} (engine profile {lo}..{hi})")
        for n in self.inputs + self.outputs:
            dims = tuple(self.context.get_tensor_shape(n))
            if any(d < 0 for d in dims):
                raise ArtifactError(f"TensorRT left {n} with an unresolved shape {dims} for input shape {shape}")
            dtype = np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(n)))
            nbytes = int(np.prod(dims)) * dtype.itemsize
            host = self.cuda.host_alloc(dims, dtype)
            dptr = self.cuda.device_alloc(nbytes)
            self._buffers[n] = (host, dptr)  # recorded first: freed with the others if the next line fails
            if not self.context.set_tensor_address(n, dptr):
                raise ArtifactError(f"TensorRT refused the device address of {n}")
        self._shape = shape
        self._graph = None

    def _enqueue(self) -> None:
        if not self.context.execute_async_v3(self.cuda.stream_handle):
            raise ArtifactError("TensorRT execute_async_v3 failed")

    def _upload(self, x: np.ndarray) -> None:
        if self._shape != tuple(x.shape):
            self._prepare(tuple(x.shape))
        host_in, d_in = self._buffers[self.inputs[0]]
        np.copyto(host_in, x, casting="same_kind")
        self.cuda.h2d(d_in, host_in)

    def _run(self) -> None:
        if self.use_graph and self._graph is None:
            self._graph = self._capture()
        if self._graph is not None:
            self.cuda.launch_graph(self._graph)
        else:
            self._enqueue()

    def _capture(self):
        """Capture one enqueue into a CUDA graph, as trtexec does: a plain run first (TensorRT flushes deferred
        work), synchronise, capture in thread-local mode, and always end the capture. If capture fails in any way
        the runner stays usable: graphs are switched off for good (one warning, no new attempt on later calls or
        shapes) and plain execution is used."""
        self._enqueue()
        self.cuda.synchronize()
        graph, ok, why = None, False, ""
        try:
            self.cuda.begin_capture()
            try:
                ok = bool(self.context.execute_async_v3(self.cuda.stream_handle))
            finally:
                graph = self.cuda.end_capture()  # leaves the stream out of capture mode whatever happened
        except Exception as e:  # a backend without graphs (pycuda), or a capture CUDA rejected
            why = f": {e}"
        if ok and graph is not None:
            return graph
        if graph is not None:
            self.cuda.graph_free(graph)
        self.use_graph = False
        import warnings

        warnings.warn(f"CUDA graph capture failed{why}; running without CUDA graphs", stacklevel=4)
        return None

    def device_time_ms(self, inputs, iters: int, warmup: int):
        """Engine compute only: the input is uploaded once, then each run is timed with CUDA events."""
        self._upload(inputs[self.inputs[0]])
        self.cuda.synchronize()
        times = [self.cuda.elapsed_ms(self._run) for _ in range(warmup + iters)]
        return times[warmup:]

    def __call__(self, inputs):
        with self.cuda.active():  # worker threads (streaming) get this runner's device/context
            return self._call(inputs)

    def _call(self, inputs):
        self._upload(inputs[self.inputs[0]])
        self._run()
        for n in self.outputs:
            host, dptr = self._buffers[n]
            self.cuda.d2h(host, dptr)
        self.cuda.synchronize()
        return {n: self._buffers[n][0].copy() for n in self.outputs}

    def versions(self):
        return {"tensorrt": self.trt.__version__, "cuda_memory": self.cuda.name}

    def _free_buffers(self) -> None:
        self.cuda.synchronize()
        for host, dptr in self._buffers.values():
            self.cuda.device_free(dptr)
            self.cuda.host_free(host)
        self._buffers.clear()
        if self._graph is not None:
            self.cuda.graph_free(self._graph)
        self._graph = None
        self._shape = None

    def close(self) -> None:
        if getattr(self, "_buffers", None) is not None and hasattr(self, "cuda"):
            self._free_buffers()
            self.context = self.engine = None  # released: unusable after close()
            self.cuda.close()
