"""Device buffers, pinned host buffers and a stream, through cuda-python (cuda.bindings) or pycuda.

cuda-python is the default (`pip install cuda-python`); pycuda is accepted where it is missing, as on
older Jetson images. Both expose the same operations the TensorRT runner needs: allocate and free device and
pinned host buffers, async copies on one non-blocking stream, synchronize, and (cuda-python) CUDA graphs.
"""

from __future__ import annotations

import contextlib
import ctypes
from typing import TYPE_CHECKING, Any

import numpy as np

from edgedet.errors import BackendUnavailableError, EdgeDetError


def _cudart():
    """cuda.bindings.runtime, or cuda.cudart (the same API) on older cuda-python. Callers that want mypy to check
    their calls bind the result as `if TYPE_CHECKING: from cuda.bindings import runtime as rt / else: rt = _cudart()`
    (a function's return type cannot carry a module's attributes)."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6

        return cudart
    except ImportError:
        from cuda import cudart  # type: ignore[no-redef]  # older cuda-python

        return cudart


def _check(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise EdgeDetError(f"CUDA call failed: {err}")
    return rest[0] if len(rest) == 1 else (rest or None)


class CudaPython:
    name = "cuda-python"

    def __init__(self, device: int = 0):
        if TYPE_CHECKING:
            from cuda.bindings import runtime as rt
        else:
            rt = _cudart()
        self.rt = rt
        self.device = int(device)
        _check(self.rt.cudaSetDevice(self.device))
        self.stream = _check(self.rt.cudaStreamCreateWithFlags(self.rt.cudaStreamNonBlocking))

    @contextlib.contextmanager
    def active(self):
        """Make this runner's device current in the calling thread (the runtime API's device is per thread)."""
        _check(self.rt.cudaSetDevice(self.device))
        yield

    def device_alloc(self, nbytes: int) -> int:
        return int(_check(self.rt.cudaMalloc(max(nbytes, 1))))

    def host_alloc(self, shape, dtype) -> np.ndarray:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        ptr = int(_check(self.rt.cudaMallocHost(max(nbytes, 1))))
        buf = (ctypes.c_byte * max(nbytes, 1)).from_address(ptr)
        return np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape))).reshape(shape)

    def device_free(self, dptr: int) -> None:
        _check(self.rt.cudaFree(dptr))

    def host_free(self, host: np.ndarray) -> None:
        _check(self.rt.cudaFreeHost(host.ctypes.data))  # the array must not be used afterwards

    def close(self) -> None:
        if self.stream is not None:
            _check(self.rt.cudaStreamDestroy(self.stream))
            self.stream = None

    def h2d(self, dptr: int, host: np.ndarray) -> None:
        _check(
            self.rt.cudaMemcpyAsync(
                dptr, host.ctypes.data, host.nbytes, self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream
            )
        )

    def d2h(self, host: np.ndarray, dptr: int) -> None:
        _check(
            self.rt.cudaMemcpyAsync(
                host.ctypes.data, dptr, host.nbytes, self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream
            )
        )

    def synchronize(self) -> None:
        _check(self.rt.cudaStreamSynchronize(self.stream))

    @property
    def stream_handle(self) -> int:
        return int(self.stream)

    def begin_capture(self) -> None:
        # thread-local mode: other threads' CUDA calls do not invalidate this capture (as trtexec)
        _check(
            self.rt.cudaStreamBeginCapture(self.stream, self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal)
        )

    def end_capture(self):
        """End the capture (always call it after begin_capture); the instantiated graph, or None when the
        captured work was invalid (the stream is out of capture mode either way)."""
        err, graph = self.rt.cudaStreamEndCapture(self.stream)
        if int(err) != 0 or graph is None:
            return None
        try:
            err, exec_graph = self.rt.cudaGraphInstantiate(graph, 0)
            return exec_graph if int(err) == 0 else None
        finally:
            _check(self.rt.cudaGraphDestroy(graph))  # the instantiated graph keeps what it needs

    def elapsed_ms(self, fn) -> float:
        """GPU time of the work `fn` enqueues on this stream (CUDA events)."""
        start, end = _check(self.rt.cudaEventCreate()), _check(self.rt.cudaEventCreate())
        try:
            _check(self.rt.cudaEventRecord(start, self.stream))
            fn()
            _check(self.rt.cudaEventRecord(end, self.stream))
            _check(self.rt.cudaEventSynchronize(end))
            return float(_check(self.rt.cudaEventElapsedTime(start, end)))
        finally:
            _check(self.rt.cudaEventDestroy(start))
            _check(self.rt.cudaEventDestroy(end))

    def graph_free(self, exec_graph) -> None:
        _check(self.rt.cudaGraphExecDestroy(exec_graph))

    def launch_graph(self, exec_graph) -> None:
        _check(self.rt.cudaGraphLaunch(exec_graph, self.stream))

    def device_properties(self, index: int = 0) -> dict:
        prop = _check(self.rt.cudaGetDeviceProperties(index))
        name = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
        return {
            "gpu": name.strip("\x00 "),
            "compute_capability": f"{prop.major}.{prop.minor}",
            "cuda_runtime": int(_check(self.rt.cudaRuntimeGetVersion())),
        }


class PyCuda:
    name = "pycuda"

    def __init__(self, device: int = 0):
        import pycuda.driver as drv

        if device != 0:
            raise EdgeDetError(
                "pycuda support here is for device 0 only (pycuda.autoinit); install cuda-python to choose another GPU"
            )
        import pycuda.autoinit  # creates the context, current in this thread only

        self.drv = drv
        self.device = 0
        self.context = pycuda.autoinit.context
        self.stream = drv.Stream()
        self._keep: dict[int, Any] = {}  # pycuda DeviceAllocation by address

    @contextlib.contextmanager
    def active(self):
        """pycuda's context is current only in the thread that made it: push it around calls from others."""
        if self.drv.Context.get_current() == self.context:
            yield
            return
        self.context.push()
        try:
            yield
        finally:
            self.drv.Context.pop()

    def device_alloc(self, nbytes: int) -> int:
        mem = self.drv.mem_alloc(max(nbytes, 1))
        self._keep[int(mem)] = mem
        return int(mem)

    def device_free(self, dptr: int) -> None:
        mem = self._keep.pop(int(dptr), None)
        if mem is not None:
            mem.free()

    def host_alloc(self, shape, dtype) -> np.ndarray:
        return self.drv.pagelocked_empty(shape, dtype)

    def host_free(self, host: np.ndarray) -> None:
        pass  # page-locked numpy arrays are released with their last reference

    def close(self) -> None:
        for dptr in list(self._keep):
            self.device_free(dptr)

    def h2d(self, dptr: int, host: np.ndarray) -> None:
        self.drv.memcpy_htod_async(dptr, host, self.stream)

    def d2h(self, host: np.ndarray, dptr: int) -> None:
        self.drv.memcpy_dtoh_async(host, dptr, self.stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    @property
    def stream_handle(self) -> int:
        return self.stream.handle

    def elapsed_ms(self, fn) -> float:
        start, end = self.drv.Event(), self.drv.Event()
        start.record(self.stream)
        fn()
        end.record(self.stream)
        end.synchronize()
        return float(end.time_since(start))

    def begin_capture(self):
        raise EdgeDetError("CUDA graph capture needs cuda-python")

    def end_capture(self):
        return None

    def device_properties(self, index: int = 0) -> dict:
        dev = self.drv.Device(index)
        major, minor = dev.compute_capability()
        return {
            "gpu": dev.name(),
            "compute_capability": f"{major}.{minor}",
            "cuda_runtime": self.drv.get_version()[0] * 1000 + self.drv.get_version()[1] * 10,
        }


def cuda_backend(device: int = 0):
    """cuda-python if importable, else pycuda; BackendUnavailableError naming the extra otherwise.
    The returned object owns a CUDA stream: close() it."""
    errors = []
    for impl in (CudaPython, PyCuda):
        try:
            return impl(device)
        except ImportError as e:
            errors.append(e)
    raise BackendUnavailableError("tensorrt (CUDA memory)", "tensorrt", errors[0])


@contextlib.contextmanager
def use_device(index: int):
    """Make GPU `index` current in this thread for the block, then restore the previous one. TensorRT builds for
    the device current when the builder is created (as trtexec's --device does with cudaSetDevice), so
    `edgedet build --device cuda:N` must set it before `trt.Builder`."""
    if TYPE_CHECKING:
        from cuda.bindings import runtime as rt
    else:
        try:
            rt = _cudart()
        except ImportError:
            if index != 0:
                raise BackendUnavailableError("tensorrt (CUDA device selection)", "tensorrt") from None
            yield  # pycuda only: device 0, the only one it serves here
            return
    previous = int(_check(rt.cudaGetDevice()))
    _check(rt.cudaSetDevice(int(index)))
    try:
        yield
    finally:
        _check(rt.cudaSetDevice(previous))


def device_properties(index: int = 0) -> dict:
    """GPU name, compute capability and CUDA runtime version, without creating a stream (nothing to close)."""
    try:
        if TYPE_CHECKING:
            from cuda.bindings import runtime as rt
        else:
            rt = _cudart()
    except ImportError:
        backend = cuda_backend(index)  # pycuda: its context is process-wide anyway
        try:
            return backend.device_properties(index)
        finally:
            backend.close()
    count = int(_check(rt.cudaGetDeviceCount()))
    if not 0 <= index < count:
        from .errors import InputError

        raise InputError(f"cuda:{index} requested but {count} CUDA device(s) are visible")
    prop = _check(rt.cudaGetDeviceProperties(index))
    name = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
    return {
        "gpu": name.strip("\x00 "),
        "compute_capability": f"{prop.major}.{prop.minor}",
        "cuda_runtime": int(_check(rt.cudaRuntimeGetVersion())),
    }
