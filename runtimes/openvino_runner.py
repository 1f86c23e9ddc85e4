"""OpenVINO runner (IR or ONNX). Options: hint LATENCY|THROUGHPUT, precision f32|bf16|f16, cache_dir, streams."""
from __future__ import annotations

import openvino as ov

from edgedet.errors import ArtifactError, InputError

from .base import AsyncQueue, Runner

_PRECISIONS = {"f32": "f32", "fp32": "f32", "bf16": "bf16", "f16": "f16", "fp16": "f16"}


class OpenVinoRunner(Runner):
    name = "openvino"

    def __init__(self, path, manifest, device=None, hint: str = "LATENCY", precision: str | None = None,
                 cache_dir: str | None = None, streams: int | None = None, threads: int | None = None, **options):
        super().__init__(path, manifest, device, **options)
        self.core = ov.Core()
        dev = (device or "CPU").upper()
        if hint.upper() not in ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT"):
            raise InputError(f"OpenVINO hint must be LATENCY or THROUGHPUT, got {hint!r}")
        config = {"PERFORMANCE_HINT": hint.upper()}
        if precision is not None:
            if precision.lower() not in _PRECISIONS:
                raise InputError(f"OpenVINO inference precision must be f32, bf16 or f16, got {precision!r}")
            config["INFERENCE_PRECISION_HINT"] = _PRECISIONS[precision.lower()]
        if cache_dir:
            config["CACHE_DIR"] = str(cache_dir)
        if streams:
            config["NUM_STREAMS"] = str(int(streams))
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            model = self.core.read_model(str(self.path))
            self.compiled = self.core.compile_model(model, dev, config)
        except Exception as e:
            raise ArtifactError(f"OpenVINO cannot load {self.path.name} on {dev}: "
                                f"{str(e).strip().splitlines()[0][:300]}") from None
        self.request = self.compiled.create_infer_request()
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]
        self._device = dev

    @property
    def device(self) -> str:
        return self._device

    @property
    def input_shape(self):
        return [d.get_length() if d.is_static else None for d in self.compiled.inputs[0].get_partial_shape()]

    def __call__(self, inputs):
        """Outputs are views of the request's tensors: valid until the next call (the Detector consumes
        them at once); copy them to keep them longer."""
        self.request.infer(inputs, share_inputs=True, share_outputs=True)
        return {name: self.request.get_output_tensor(i).data for i, name in enumerate(self.output_names)}

    def optimal_requests(self) -> int:
        return int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))

    def versions(self):
        return {"openvino": ov.get_version()}

    def async_queue(self, jobs: int | None = None) -> "OpenVinoAsyncQueue":
        """As many requests as the compiled model's hint asks for (THROUGHPUT: one per stream) and at least two,
        so one request's post-processing overlaps the next one's inference; or `jobs`."""
        return OpenVinoAsyncQueue(self.compiled, self.output_names, jobs or max(2, self.optimal_requests()))

    def run_async(self, inputs, count: int) -> float:
        """Run `count` requests through an AsyncInferQueue sized by OpenVINO; returns elapsed seconds."""
        import time
        queue = ov.AsyncInferQueue(self.compiled, self.optimal_requests())
        t0 = time.perf_counter()
        for _ in range(count):
            queue.start_async(inputs)
        queue.wait_all()
        return time.perf_counter() - t0


class OpenVinoAsyncQueue(AsyncQueue):
    """AsyncInferQueue: OpenVINO's own request pool, callbacks run in its threads with the request's tensors."""

    def __init__(self, compiled, output_names: list[str], jobs: int):
        self.capacity = max(1, int(jobs))
        self._queue = ov.AsyncInferQueue(compiled, self.capacity)
        self._names = output_names
        self._queue.set_callback(self._on_done)

    def _on_done(self, request, callback):
        callback({name: request.get_output_tensor(i).data for i, name in enumerate(self._names)})

    def submit(self, inputs, callback):
        self._queue.start_async(inputs, callback, share_inputs=True)  # blocks while all requests are busy

    def wait_all(self):
        self._queue.wait_all()
