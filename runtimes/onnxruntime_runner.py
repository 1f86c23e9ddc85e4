"""ONNX Runtime runner: CPU, or CUDA through onnxruntime-gpu's CUDA execution provider (device cuda / cuda:N),
with IO binding on CUDA so each input and output crosses the bus once."""

from __future__ import annotations

import os

import onnxruntime as ort

from edgedet.errors import ArtifactError, BackendUnavailableError
from edgedet.options import Option

from .base import Runner, gemm_gflops

_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def _providers(device) -> list:
    """Execution providers for a parsed device: a table, one row per device kind."""
    rows = {
        "cpu": lambda d: ["CPUExecutionProvider"],
        "cuda": lambda d: [("CUDAExecutionProvider", {"device_id": d.ordinal}), "CPUExecutionProvider"],
    }
    wanted = rows[device.kind](device)
    first = wanted[0][0] if isinstance(wanted[0], tuple) else wanted[0]
    if first not in ort.get_available_providers():
        raise BackendUnavailableError(
            f"onnxruntime on {device}",
            "onnxruntime-gpu",
            RuntimeError(f"{first} is not in this onnxruntime build ({', '.join(ort.get_available_providers())})"),
        )
    return wanted


class OnnxRuntimeRunner(Runner):
    """hint LATENCY: one request uses every core; THROUGHPUT: one thread per request and a request per core
    (for streams, where several frames are in flight)."""

    name = "onnxruntime"
    OPTIONS = {
        "threads": Option(int, minimum=1, help="intra-op threads (default: all cores; THROUGHPUT: 1)"),
        "graph_optimization": Option(str, "all", tuple(_LEVELS)),
        "hint": Option(str, "LATENCY", ("LATENCY", "THROUGHPUT"), upper=True),
    }

    def __init__(self, path, manifest, device, threads=None, graph_optimization="all", hint="LATENCY"):
        super().__init__(path, manifest, device)
        providers = _providers(device)
        cores = os.cpu_count() or 1
        throughput = hint == "THROUGHPUT"
        on_cpu = device.kind == "cpu"
        so = ort.SessionOptions()
        so.graph_optimization_level = _LEVELS[graph_optimization]
        so.intra_op_num_threads = int(threads or (1 if throughput and on_cpu else cores))
        # requests in flight for streaming (session.run is thread-safe): enough to fill the cores
        self.stream_jobs = max(1, cores // so.intra_op_num_threads) if throughput else 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=so, providers=providers)
        except Exception as e:
            raise ArtifactError(f"ONNX Runtime cannot load {self.path.name}: {str(e).splitlines()[0][:300]}") from None
        self._device = self.session.get_providers()[0].replace("ExecutionProvider", "")
        if not on_cpu:
            self._device += f":{device.ordinal}"
        self._io_binding = not on_cpu

    @property
    def device(self) -> str:
        return self._device

    @property
    def input_shape(self):
        return list(self.session.get_inputs()[0].shape)

    @property
    def overridable_inputs(self) -> set[str]:
        return {i.name for i in self.session.get_overridable_initializers()}

    @property
    def model_io(self) -> tuple[list[str], list[str]]:
        """The graph's input and output names, for the Detector to check the manifest against."""
        return [i.name for i in self.session.get_inputs()], [o.name for o in self.session.get_outputs()]

    @property
    def execution_precision(self) -> str:
        """ONNX Runtime runs the graph's own types on its provider (no reduced-precision rewriting)."""
        return f"{self.manifest.precision} ({self.session.get_providers()[0]})"

    def __call__(self, inputs):
        if self._io_binding:
            return self._run_bound(inputs)
        outs = self.session.run(self.output_names, inputs)
        return dict(zip(self.output_names, outs))

    def _run_bound(self, inputs):
        """CUDA: inputs copied to the device once, outputs allocated by ORT on the device and copied back once."""
        binding = self.session.io_binding()
        for name, value in inputs.items():
            binding.bind_cpu_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, "cuda", self.device_spec.ordinal)
        self.session.run_with_iobinding(binding)
        return dict(zip(self.output_names, binding.copy_outputs_to_cpu()))

    def matmul_peak(self, n: int = 1024, iters: int = 10) -> dict | None:
        """ONNX Runtime's own n x n MatMul on this runner's provider and threads: float (f32, or f16 for an fp16
        artifact), or for an INT8 artifact a Q/DQ MatMul, which ONNX Runtime runs as an integer GEMM. Needs the
        `onnx` package to write the graph (None without it)."""
        import numpy as np

        try:
            from onnx import TensorProto, helper, numpy_helper
        except ImportError:
            return None
        from edgedet.precision import float_part, is_int8

        int8 = is_int8(self.manifest.precision)
        f16 = not int8 and float_part(self.manifest.precision) == "f16"
        dtype, proto = (np.float16, TensorProto.FLOAT16) if f16 else (np.float32, TensorProto.FLOAT)
        rng = np.random.default_rng(0)
        w = rng.standard_normal((n, n)).astype(np.float32)
        if int8:
            inits = [
                numpy_helper.from_array(np.clip(np.round(w * 30), -127, 127).astype(np.int8), "wq"),
                numpy_helper.from_array(np.array(1 / 30, np.float32), "ws"),
                numpy_helper.from_array(np.array(0, np.int8), "wz"),
                numpy_helper.from_array(np.array(8 / 255, np.float32), "xs"),
                numpy_helper.from_array(np.array(128, np.uint8), "xz"),
            ]
            nodes = [
                helper.make_node("QuantizeLinear", ["a", "xs", "xz"], ["aq"]),
                helper.make_node("DequantizeLinear", ["aq", "xs", "xz"], ["ad"]),
                helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
                helper.make_node("MatMul", ["ad", "wd"], ["y"]),
            ]
        else:
            inits, nodes = (
                [numpy_helper.from_array(w.astype(dtype), "w")],
                [helper.make_node("MatMul", ["a", "w"], ["y"])],
            )
        graph = helper.make_graph(
            nodes,
            "matmul_peak",
            [helper.make_tensor_value_info("a", proto, [n, n])],
            [helper.make_tensor_value_info("y", proto, [n, n])],
            inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.session.get_session_options().intra_op_num_threads
        so.log_severity_level = 3
        session = ort.InferenceSession(model, sess_options=so, providers=self.session.get_providers())
        x = {"a": rng.standard_normal((n, n)).astype(dtype)}
        gflops = gemm_gflops(lambda: session.run(None, x), n, iters)
        precision = "int8" if int8 else "f16" if f16 else "f32"
        return {
            "gflops_per_s": gflops,
            "precision": precision,
            "how": f"ONNX Runtime {n}x{n} {'Q/DQ ' if int8 else ''}MatMul, {precision}, "
            f"{self.session.get_providers()[0]}, {so.intra_op_num_threads} threads, best of {iters}",
        }

    def versions(self):
        return {"onnxruntime": ort.__version__}
