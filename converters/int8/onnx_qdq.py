"""Q/DQ ONNX via ONNX Runtime's static quantization: ONNX Runtime's own INT8 form.

"onnxruntime": U8S8 (uint8 activations, int8 per-channel weights) - what ORT runs fastest on x86 (S8S8 activations
are slow there). Only convolutions are quantized (they are >99% of the multiply-adds); nodes_to_exclude keeps
sensitive layers in float. TensorRT's form is NVIDIA ModelOpt's (modelopt_qdq.py): Q/DQ plus FP16, which this
quantizer cannot write.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedet.errors import BackendUnavailableError, ConversionError, InputError

FORMS = {
    "onnxruntime": {"activation": "QUInt8", "symmetric_activations": False, "quantize_bias": True},
}
METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


class _Reader:
    def __init__(self, name: str, tensors: list[np.ndarray]):
        self.name, self.tensors, self.i = name, tensors, 0

    def get_next(self):
        if self.i >= len(self.tensors):
            return None
        self.i += 1
        return {self.name: self.tensors[self.i - 1]}

    def rewind(self):
        self.i = 0

    # ONNX Runtime's strided calibration (CalibStridedMinMax) feeds the calibrator one slice at a time
    def __len__(self):
        return len(self.tensors)

    def set_range(self, start_index: int, end_index: int):
        self.tensors_all = getattr(self, "tensors_all", self.tensors)
        self.tensors, self.i = self.tensors_all[start_index:end_index], 0


def _stride(n: int, most: int = 16) -> int:
    """Largest chunk size <= most that divides n (ONNX Runtime requires an exact division)."""
    return max(d for d in range(1, min(n, most) + 1) if n % d == 0)


def quantize_qdq(
    fp32_onnx: Path,
    out: Path,
    tensors: list[np.ndarray] | None,
    form: str,
    method: str,
    ranges_cache: Path,
    exclude: list[str] = (),
    *,
    input_name: str,
    reduce_range: bool = False,
) -> Path:
    """`reduce_range`: 7-bit weights, for CPUs without VNNI whose u8 x s8 dot products can saturate."""
    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    except ImportError as e:
        raise BackendUnavailableError("onnxruntime quantization", "onnxruntime", e) from e
    if form not in FORMS:
        raise InputError(f"unknown Q/DQ form {form!r}")
    if method not in METHODS:
        raise InputError(f"--method must be one of {', '.join(METHODS)}")
    spec = FORMS[form]
    reader = _Reader(input_name, tensors) if tensors is not None else None
    extra = {
        "ActivationSymmetric": spec["symmetric_activations"],
        "WeightSymmetric": True,
        "CalibMovingAverage": False,
        "QuantizeBias": spec["quantize_bias"],
    }
    if method == "percentile":
        extra["CalibPercentile"] = 99.99
    if method != "minmax" and tensors:
        # Histogram calibrators keep every activation of every image until they bin them (about 100 MB per
        # 256-px D0 image: 300 images exhaust 24 GB). Feeding slices bins as it goes: memory of one slice.
        extra["CalibStridedMinMax"] = _stride(len(tensors))
    try:
        quantize_static(
            str(fp32_onnx),
            str(out),
            reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"],
            per_channel=True,
            activation_type=getattr(QuantType, spec["activation"]),
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(exclude),
            reduce_range=reduce_range,
            calibrate_method=getattr(CalibrationMethod, METHODS[method]),
            extra_options=extra,
            calibration_cache_path=str(ranges_cache),
        )
    except Exception as e:
        raise ConversionError(f"INT8 quantization ({form}, {method}) failed: {e}") from e
    return out


def conv_nodes(onnx_path: Path) -> list[str]:
    import onnx

    return [n.name for n in onnx.load(str(onnx_path), load_external_data=False).graph.node if n.op_type == "Conv"]
