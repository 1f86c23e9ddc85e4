"""OpenVINO runner (IR or ONNX) on CPU, GPU(.N), NPU or AUTO.

`inference_precision` is OpenVINO's runtime INFERENCE_PRECISION_HINT (f32 | bf16 | f16), distinct from the
precision an artifact was built with. Left unset, OpenVINO picks the device's own (bf16 on CPUs with AVX-512 BF16 or
AMX, f16 on GPUs), unless that precision failed its accuracy gate for this artifact (edgedet.precision): then the
runner runs f32 and says why in `precision_note`. Each calling thread gets its own infer request, so one Detector can
be shared by threads."""

from __future__ import annotations

import threading

import openvino as ov

import edgedet.precision as gates
from edgedet.errors import ArtifactError
from edgedet.options import Option

from .base import AsyncQueue, Runner, gemm_gflops

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
        try:
            if dev not in self.core.available_devices and device.kind != "auto":
                raise RuntimeError(f"device {dev} not found (available: {', '.join(self.core.available_devices)})")
            if inference_precision is None:
                optional["INFERENCE_PRECISION_HINT"] = self._gated_default(dev)
            config.update({k: v for k, v in optional.items() if v is not None})
            model = self.core.read_model(str(self.path))
            self.compiled = self.core.compile_model(model, dev, config)
        except Exception as e:
            raise ArtifactError(f"OpenVINO cannot load {self.path.name} on {dev}: {_first_line(e)}") from None
        self._requests = threading.local()
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]
        self._device = dev

    precision_note = ""  # why the runner chose its precision, where it overrode the device's default

    def _gated_default(self, dev: str) -> str | None:
        """None (the device's own precision) unless that precision failed its accuracy gate for this artifact:
        then f32."""
        default = device_precision(self.core, dev)
        bad = gates.failed(self.manifest, self.name, default)
        if bad is None:
            return None
        self.precision_note = (
            f"{default} failed its accuracy gate for this artifact (AP drop {bad.get('drop')} > "
            f"{bad.get('max_ap_drop')}): running f32"
        )
        return "f32"

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
            return value if not gates.is_int8(self.manifest.precision) else f"int8 + {value}"
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

    def matmul_peak(self, n: int = 1024, iters: int = 10) -> dict:
        """OpenVINO's own n x n MatMul on this runner's device, compiled with the precision hint and threads this
        runner's model runs with; an INT8 artifact's peak is the INT8 GEMM's (FakeQuantize on both operands, which
        OpenVINO executes as an integer GEMM), the fastest arithmetic such a row can use."""
        import numpy as np
        import openvino.opset13 as ops

        rng = np.random.default_rng(0)
        a = ops.parameter([n, n], ov.Type.f32, name="a")
        w = ops.constant(rng.standard_normal((n, n)).astype(np.float32))
        int8 = gates.is_int8(self.execution_precision)
        if int8:
            lo, hi = ops.constant(np.float32(-4.0)), ops.constant(np.float32(4.0))
            src, w = ops.fake_quantize(a, lo, hi, lo, hi, 256), ops.fake_quantize(w, lo, hi, lo, hi, 255)
        else:
            src = a
        config = {"PERFORMANCE_HINT": "LATENCY"}
        for key in ("INFERENCE_PRECISION_HINT", "INFERENCE_NUM_THREADS"):
            try:
                config[key] = self.compiled.get_property(key)
            except Exception:  # a plugin that does not report it: its default
                pass
        core = self.core or ov.Core()
        compiled = core.compile_model(ov.Model([ops.matmul(src, w, False, False)], [a]), self._device, config)
        request = compiled.create_infer_request()
        x = rng.standard_normal((n, n)).astype(np.float32)
        gflops = gemm_gflops(lambda: request.infer({0: x}), n, iters)
        precision = gates.float_part(str(config.get("INFERENCE_PRECISION_HINT"))) or "f32"
        return {
            "gflops_per_s": gflops,
            "precision": "int8" if int8 else precision,
            "how": f"OpenVINO {n}x{n} MatMul on {self._device}, {'int8 (FakeQuantize)' if int8 else precision}, "
            f"best of {iters}",
        }

    def optimal_requests(self) -> int:
        return int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))

    def versions(self):
        return {"openvino": ov.get_version()}

    def async_queue(self, jobs: int | None = None) -> "OpenVinoAsyncQueue":
        """As many requests as the compiled model's hint asks for (THROUGHPUT: one per stream) and at least two,
        so one request's post-processing overlaps the next one's inference; or `jobs`."""
        return OpenVinoAsyncQueue(self.compiled, self.output_names, jobs or max(2, self.optimal_requests()))


def device_precision(core, dev: str) -> str | None:
    """The float precision OpenVINO runs on `dev` when none is asked for (f32, bf16, f16); None where the plugin does
    not say before compiling (AUTO)."""
    try:
        return gates.float_part(str(core.get_property(dev, "INFERENCE_PRECISION_HINT")))
    except Exception:
        return None


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
