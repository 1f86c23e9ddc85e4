"""OpenVINO runner (IR or ONNX) on CPU, GPU(.N), NPU or AUTO.

`inference_precision` is OpenVINO's runtime INFERENCE_PRECISION_HINT (f32 | bf16 | f16), distinct from the
precision an artifact was built with. Each calling thread gets its own infer request, so one Detector can be
shared by threads."""

from __future__ import annotations

import threading

import openvino as ov

from edgedet.errors import ArtifactError
from edgedet.options import Option

from .base import AsyncQueue, Runner

_DEVICES = {"cpu": "CPU", "gpu": "GPU", "npu": "NPU", "auto": "AUTO"}


def _ov_device(device) -> str:
    name = _DEVICES[device.kind]
    return name if device.index is None else f"{name}.{device.index}"


class OpenVinoRunner(Runner):
    name = "openvino"
    OPTIONS = {
        "hint": Option(str, "LATENCY", ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT"), upper=True),
        "inference_precision": Option(
            str, None, ("f32", "bf16", "f16"), help="runtime precision hint (default: OpenVINO's choice for the device)"
        ),
        "cache_dir": Option(str, help="OpenVINO model cache folder (default: in the edgedet cache; '' disables)"),
        "streams": Option(int, minimum=1, help="NUM_STREAMS (default: from the hint)"),
        "threads": Option(int, minimum=1, help="INFERENCE_NUM_THREADS"),
    }

    def __init__(
        self,
        path,
        manifest,
        device,
        hint="LATENCY",
        inference_precision=None,
        cache_dir=None,
        streams=None,
        threads=None,
    ):
        super().__init__(path, manifest, device)
        self.core = ov.Core()
        dev = _ov_device(device)
        config = {"PERFORMANCE_HINT": hint}
        if cache_dir is None:  # compiled blobs are reused across processes: a second start skips the compile
            cache_dir = _default_model_cache()
        optional = {
            "INFERENCE_PRECISION_HINT": inference_precision,
            "CACHE_DIR": cache_dir or None,
            "NUM_STREAMS": None if streams is None else str(streams),
            "INFERENCE_NUM_THREADS": threads,
        }
        config.update({k: v for k, v in optional.items() if v is not None})
        try:
            if dev not in self.core.available_devices and device.kind != "auto":
                raise RuntimeError(f"device {dev} not found (available: {', '.join(self.core.available_devices)})")
            model = self.core.read_model(str(self.path))
            self.compiled = self.core.compile_model(model, dev, config)
        except Exception as e:
            raise ArtifactError(f"OpenVINO cannot load {self.path.name} on {dev}: {_first_line(e)}") from None
        self._requests = threading.local()
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]
        self._device = dev

    @classmethod
    def from_compiled(cls, compiled, manifest, label: str = "compiled model") -> "OpenVinoRunner":
        """A runner around a model OpenVINO already compiled (NNCF's accuracy control hands its candidates to the
        accuracy gate this way, without writing them to disk)."""
        from pathlib import Path

        from edgedet.devices import parse_device

        self = cls.__new__(cls)
        Runner.__init__(self, Path(label), manifest, parse_device("cpu"))
        self.core, self.compiled, self._device = None, compiled, "CPU"
        self._requests = threading.local()
        self.output_names = [o.get_any_name() for o in compiled.outputs]
        return self

    @property
    def device(self) -> str:
        return self._device

    @property
    def input_shape(self):
        return [d.get_length() if d.is_static else None for d in self.compiled.inputs[0].get_partial_shape()]

    @property
    def model_io(self) -> tuple[list[str], list[str]]:
        """Every name of the compiled model's inputs and outputs, for the Detector to check the manifest against."""
        return (
            [n for port in self.compiled.inputs for n in sorted(port.get_names())],
            [n for port in self.compiled.outputs for n in sorted(port.get_names())],
        )

    @property
    def execution_precision(self) -> str:
        """The precision OpenVINO actually runs (its compiled INFERENCE_PRECISION_HINT on this device)."""
        try:
            value = self.compiled.get_property("INFERENCE_PRECISION_HINT")
            value = value.to_string() if hasattr(value, "to_string") else str(value)
            return value if self.manifest.precision != "int8" else f"int8 + {value}"
        except Exception:
            return "unknown"

    def _request(self):
        req = getattr(self._requests, "request", None)
        if req is None:
            req = self._requests.request = self.compiled.create_infer_request()
        return req

    def __call__(self, inputs):
        """Outputs are views of this thread's request tensors: valid until this thread's next call (the
        Detector consumes them at once); copy them to keep them longer."""
        outputs = self._request().infer(inputs, share_inputs=True, share_outputs=True)
        return dict(zip(self.output_names, outputs.to_tuple()))  # in the compiled model's output order

    def optimal_requests(self) -> int:
        return int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))

    def versions(self):
        return {"openvino": ov.get_version()}

    def async_queue(self, jobs: int | None = None) -> "OpenVinoAsyncQueue":
        """As many requests as the compiled model's hint asks for (THROUGHPUT: one per stream) and at least two,
        so one request's post-processing overlaps the next one's inference; or `jobs`."""
        return OpenVinoAsyncQueue(self.compiled, self.output_names, jobs or max(2, self.optimal_requests()))


def _default_model_cache() -> str:
    """OpenVINO's model cache inside the edgedet cache, or none (with a warning) where it cannot be written:
    a read-only cache slows the start, it does not stop the artifact from loading."""
    import os
    import warnings

    from edgedet.weights import cache_dir

    folder = cache_dir() / "openvino-model-cache"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK):
            return str(folder)
    except OSError:
        pass
    warnings.warn(f"OpenVINO model cache {folder} is not writable: compiling without a cache", stacklevel=4)
    return ""


def _first_line(e: BaseException) -> str:
    """The library's first meaningful line (OpenVINO prefixes its reason with source locations)."""
    lines = [l.strip() for l in str(e).strip().splitlines() if l.strip()]
    meaningful = [l for l in lines if not l.startswith(("Exception from", "Check '", "[ GENERAL_ERROR ]"))]
    return ((meaningful or lines or [type(e).__name__])[0])[:500]


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

    def check(self):
        for request in self._queue:  # a finished request that failed raises here (it skips our callback)
            request.wait_for(0)

    def wait_all(self):
        self._queue.wait_all()
