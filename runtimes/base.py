"""The runner contract: dict[str, np.ndarray] -> dict[str, np.ndarray], plus the device it runs on."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edgedet.devices import Device, check_device, parse_device
from edgedet.manifest import Manifest
from edgedet.options import Option, validate_options


def gemm_gflops(call: Callable[[], object], n: int, iters: int, warmup: int = 2) -> float:
    """GFLOP/s of an n x n x n matrix product run by `call`, from its fastest of `iters` timed calls after `warmup`:
    the GEMM peak a runner's matmul_peak reports."""
    import time

    for _ in range(warmup):
        call()
    best = float("inf")
    for _ in range(iters):
        t0 = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t0)
    return round(2 * n**3 / best / 1e9, 1)


class Runner(ABC):
    """One backend session. Owns nothing but the inference call; the Detector does the rest.

    A runner declares its options in OPTIONS (name -> Option); `create` checks the options a user gave
    against them (an unknown or wrongly typed one is an InputError listing the accepted ones) and the device
    against the backend's spec. A runner whose __call__ may not run from two threads at once sets
    `thread_safe = False`; the Detector and the async queue then serialise calls."""

    name: str = "base"
    OPTIONS: dict[str, Option] = {}
    thread_safe: bool = True
    stream_jobs: int = 1  # requests in flight by default when streaming (ThreadedQueue workers)

    def __init__(self, path: Path, manifest: Manifest, device: Device):
        self.path = Path(path)
        self.manifest = manifest
        self.device_spec = device
        self.input_name = manifest.input.name
        self.output_names = list(manifest.outputs)

    @classmethod
    def create(cls, spec, path: Path, manifest: Manifest, device: "str | Device | None" = None, **options) -> "Runner":
        """The runner for an artifact. An artifact exported by `edgedet tune` records the runtime options it was
        chosen with (manifest extra["runtime_options"][backend]): they are this backend's defaults for it, and
        options given here override them."""
        dev = check_device(parse_device(device, default=spec.devices[0]), spec.devices, spec.name)
        tuned = ((manifest.extra or {}).get("runtime_options") or {}).get(spec.name) if manifest is not None else None
        options = {**(tuned if isinstance(tuned, dict) else {}), **options}
        opts = validate_options(f"backend '{spec.name}'", cls.OPTIONS, options)
        return cls(path, manifest, dev, **opts)

    @property
    @abstractmethod
    def device(self) -> str:
        """Human-readable device the session runs on (e.g. 'CPU', 'cuda:0 (NVIDIA H100)')."""

    @abstractmethod
    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch synchronously."""

    @property
    def execution_precision(self) -> str:
        """The precision the backend actually runs (default: the artifact's own)."""
        return self.manifest.precision

    @property
    def overridable_inputs(self) -> set[str]:
        """Graph inputs beyond the image that a caller may feed (ONNX initializers listed as inputs: the run-time
        NMS options); backends that fold them into constants have none."""
        return set()

    @property
    def input_shape(self) -> list:
        """The artifact's own input shape (ints, or a str/None for dynamic dims), to check the manifest."""
        return []

    def versions(self) -> dict:
        return {}

    def device_time_ms(self, inputs: dict[str, np.ndarray], iters: int, warmup: int) -> list[float] | None:
        """Accelerator compute per call, inputs already on the device and no copies (CUDA events); None
        where compute and host time are the same thing (CPU backends)."""
        return None

    def matmul_peak(self, n: int = 1024, iters: int = 10) -> dict | None:
        """This backend's own GEMM rate on this runner's device at the precision it executes ({"gflops_per_s",
        "precision", "how"}), the reference for a benchmark row's %peak; None where the runner has no such
        measurement (the benchmark then says which peak it used instead)."""
        return None

    def async_queue(self, jobs: int | None = None) -> "AsyncQueue":
        """Requests in flight at once, for streaming. The default runs this runner's synchronous call in
        worker threads (the libraries release the GIL while they compute); OpenVINO overrides it."""
        return ThreadedQueue(self, jobs or self.stream_jobs if self.thread_safe else 1)

    def close(self) -> None:
        pass


Callback = Callable[[dict], None]


class AsyncQueue(ABC):
    """Submit batches without waiting; each finished batch's outputs go to its callback (in a worker thread),
    valid only during the callback. `submit` blocks while `capacity` requests are in flight. A request that
    fails is never dropped silently: `on_error` (if set) hears of it at once and `wait_all` raises it."""

    capacity: int = 1
    on_error = None

    @abstractmethod
    def submit(self, inputs: dict[str, np.ndarray], callback: Callback) -> None:
        """Start one request; `inputs` must stay unchanged until its callback ran."""

    @abstractmethod
    def wait_all(self) -> None:
        """Block until every submitted request has run its callback."""

    def check(self) -> None:
        """Raise the failure of a request that has already finished, without waiting: a failed request may never
        call back, and whoever waits for its outputs must hear of it."""

    def close(self) -> None:
        self.wait_all()


class ThreadedQueue(AsyncQueue):
    def __init__(self, runner: Runner, jobs: int):
        self.capacity = max(1, int(jobs))
        self._runner = runner
        self._pool = ThreadPoolExecutor(self.capacity, thread_name_prefix=f"edgedet-{runner.name}")
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._pending: set = set()
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()

    def submit(self, inputs, callback):
        self._slots.acquire()
        fut = self._pool.submit(self._run, inputs, callback)
        with self._lock:
            self._pending.add(fut)
        fut.add_done_callback(self._done)

    def _run(self, inputs, callback):
        try:
            outputs = self._runner(inputs)
        except BaseException as e:  # the request failed: remember it, so wait_all raises instead of losing it
            with self._lock:
                self._errors.append(e)
            if self.on_error is not None:
                self.on_error(e)
            raise
        else:
            callback(outputs)
        finally:
            self._slots.release()

    def _done(self, fut):
        with self._lock:
            self._pending.discard(fut)

    def check(self):
        with self._lock:
            if self._errors:
                raise self._errors[0]

    def wait_all(self):
        with self._lock:
            pending = list(self._pending)
        for fut in pending:
            fut.exception()  # waits; the callback reports its own errors
        with self._lock:
            errors, self._errors = self._errors, []
        if errors:
            raise errors[0]

    def close(self):
        self.wait_all()
        self._pool.shutdown(wait=True)
