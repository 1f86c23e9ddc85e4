"""INT8 strategies as data: one row per backend's INT8 form. A strategy names its build function, its
presets, the backend (and options) that evaluates its artifact here, and the file it writes. The calibration
pipeline only reads these fields: adding a strategy = one module + one row."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgedet.errors import InputError
from edgedet.registry import get_backend


@dataclass(frozen=True)
class Strategy:
    name: str
    backend: str  # the backend whose INT8 artifact this writes
    build: str  # "module:function"(fp32_onnx, out_path, ctx) -> path
    file: str  # output file name; {stem} is the model's
    presets: tuple[str, ...] = ("-",)
    evaluate_backend: str = ""  # backend that evaluates the artifact on this machine (default: `backend`)
    # with a validation set: "module:function"(fp32, out, ctx) that meets the budget itself (the library decides
    # which layers stay float); without one, the gate's own fallback by layer groups is used
    accuracy_control: str = ""
    validation: str = ""  # "module:function"(manifest, val, val_images) -> ctx.validation
    # op groups kept in float from the start, (name, node-name regexes): what this form is known to lose accuracy
    # on (the accuracy-aware builder still reverts more when the budget needs it)
    float_prior: tuple[tuple[str, tuple[str, ...]], ...] = ()
    cpu_int8: bool = False  # its int8 kernels run on this x86 CPU: 7-bit weights where they can saturate
    description: str = ""

    def path(self, out: Path, stem: str) -> Path:
        return out / self.file.format(stem=stem)


STRATEGIES: dict[str, Strategy] = {
    s.backend: s
    for s in (
        Strategy(
            "nncf",
            "openvino",
            "edgedet.converters.int8.builders:build_nncf",
            "{stem}_int8_openvino.xml",
            # MIXED (asymmetric activations) first: EfficientDet's swish outputs lie in [-0.28, inf), which a
            # symmetric range halves; on the reference model it lost 0.002 AP held out where PERFORMANCE lost
            # 0.007 (0.003 vs 0.010 at 512 px), at the same speed within 2% (benchmarks/RESULTS.md, INT8)
            presets=("mixed", "performance"),
            accuracy_control="edgedet.converters.int8.builders:build_nncf_accuracy_control",
            validation="edgedet.converters.int8.gate:openvino_validation",
            # EfficientDet's class/box heads run one set of depthwise weights over five pyramid levels; NNCF's
            # own ranking of the reference model reverted 24 of them among its 26 reverts, and with them in float
            # the reference model is within budget without ranking (benchmarks/RESULTS.md, INT8)
            float_prior=(("head depthwise convs", (r"(class|box)_net/.*conv_dw",)),),
            cpu_int8=True,
            description="NNCF post-training quantization of the OpenVINO IR; with a validation set NNCF's "
            "accuracy-aware quantization (COCO AP as the metric)",
        ),
        Strategy(
            "qdq-u8s8",
            "onnxruntime",
            "edgedet.converters.int8.builders:build_qdq_u8s8",
            "{stem}_int8_onnxruntime.onnx",
            cpu_int8=True,
            description="Q/DQ ONNX, uint8 activations, int8 per-channel weights",
        ),
        Strategy(
            "modelopt-int8-fp16",
            "tensorrt",
            "edgedet.converters.int8.builders:build_qdq_trt",
            "{stem}_int8_tensorrt.onnx",
            evaluate_backend="onnxruntime",
            description="NVIDIA ModelOpt INT8 Q/DQ (symmetric, per-channel weights, residual Adds quantized) with "
            "everything else in FP16, I/O FP32, opset 19: built strongly typed by TensorRT >= 10 (evaluated here "
            "with ONNX Runtime, which runs the same Q/DQ and FP16 arithmetic); pip install 'edgedet[tensorrt-int8]'",
        ),
    )
}


def strategy_for(backend) -> Strategy:
    spec = get_backend(backend)
    if spec.name not in STRATEGIES:
        raise InputError(f"no INT8 strategy for backend '{spec.name}'; INT8 backends: {', '.join(STRATEGIES)}")
    return STRATEGIES[spec.name]
