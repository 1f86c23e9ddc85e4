"""ONNX Runtime runner (CPU by default; CUDA/TensorRT execution providers when asked for and present)."""
from __future__ import annotations

import os

import onnxruntime as ort

from edgedet.errors import ArtifactError, InputError

from .base import Runner

_LEVELS = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
           "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
_PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


class OnnxRuntimeRunner(Runner):
    """Options: threads (intra-op, default: all cores), graph_optimization (disable|basic|extended|all),
    hint LATENCY (one request uses every core) | THROUGHPUT (one thread per request, a request per core:
    for streams, where several frames are in flight)."""

    name = "onnxruntime"

    def __init__(self, path, manifest, device=None, threads: int | None = None, graph_optimization: str = "all",
                 hint: str = "LATENCY", **options):
        super().__init__(path, manifest, device, **options)
        dev = (device or "cpu").split(":")[0].lower()
        if dev not in _PROVIDERS:
            raise InputError(f"onnxruntime device must be cpu or cuda, got {device!r}")
        if graph_optimization not in _LEVELS:
            raise InputError(f"graph_optimization must be one of {', '.join(_LEVELS)}")
        if hint.upper() not in ("LATENCY", "THROUGHPUT"):
            raise InputError(f"hint must be LATENCY or THROUGHPUT, got {hint!r}")
        cores = os.cpu_count() or 1
        throughput = hint.upper() == "THROUGHPUT"
        so = ort.SessionOptions()
        so.graph_optimization_level = _LEVELS[graph_optimization]
        so.intra_op_num_threads = int(threads or (1 if throughput and dev == "cpu" else cores))
        # requests in flight for streaming (session.run is thread-safe): enough to fill the cores
        self.stream_jobs = max(1, cores // so.intra_op_num_threads) if throughput else 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        providers = [p for p in _PROVIDERS[dev] if p in ort.get_available_providers()]
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=so, providers=providers)
        except Exception as e:
            raise ArtifactError(f"ONNX Runtime cannot load {self.path.name}: {str(e).splitlines()[0][:300]}") from None
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._device = self.session.get_providers()[0].replace("ExecutionProvider", "")

    @property
    def device(self) -> str:
        return self._device

    @property
    def input_shape(self):
        return list(self.session.get_inputs()[0].shape)

    def __call__(self, inputs):
        outs = self.session.run(self.output_names, inputs)
        return dict(zip(self.output_names, outs))

    def versions(self):
        return {"onnxruntime": ort.__version__}
