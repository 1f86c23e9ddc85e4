"""Build functions of the INT8 strategies (strategies.py): FP32 ONNX + calibration -> INT8 artifact."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class BuildContext:
    tensors: list[np.ndarray]  # preprocessed calibration images
    input_name: str
    method: str  # minmax | entropy | percentile
    ranges: Path  # range cache shared by the Q/DQ forms
    float_patterns: list[str]  # node-name regexes kept in float
    preset: str
    validation: tuple | None = None  # (items, transform, metric) for accuracy-aware builders (gate.py)
    max_drop: float = 0.01
    ranking_subset: int = 100
    seven_bit_weights: bool = False  # CPUs without VNNI: int8 dot products can saturate (edgedet.cpu)
    float_ops: list[str] = field(default_factory=list)  # what an accuracy-aware builder reverted to float
    quantized_ops: int | None = None
    fake_quantize_nodes: int | None = None


def matching(names: list[str], patterns: list[str]) -> list[str]:
    rx = [re.compile(p) for p in patterns]
    return [n for n in names if any(r.search(n) for r in rx)]


def _nncf_build(fp32: Path, out: Path, ctx: BuildContext, quantize) -> Path:
    """The OpenVINO model of the FP32 ONNX, the ops of it that ctx.float_patterns keep float, and the calibration
    inputs go to `quantize(model, inputs, float_ops)`; its INT8 model is saved as IR beside a derived manifest."""
    import openvino as ov

    from edgedet.manifest import Manifest

    from ..openvino_ir import save_ir

    model = ov.convert_model(str(fp32))
    float_ops = matching([op.get_friendly_name() for op in model.get_ordered_ops()], ctx.float_patterns)
    q = quantize(model, [{ctx.input_name: t} for t in ctx.tensors], float_ops)
    save_ir(q, out, Manifest.read(fp32).derive(precision="int8"), compress_to_fp16=False)
    return out


def build_nncf(fp32: Path, out: Path, ctx: BuildContext) -> Path:
    from .openvino_nncf import quantize_nncf

    return _nncf_build(
        fp32,
        out,
        ctx,
        lambda model, inputs, float_ops: quantize_nncf(
            model, inputs, ctx.preset, float_ops, seven_bit_weights=ctx.seven_bit_weights
        ),
    )


def build_nncf_accuracy_control(fp32: Path, out: Path, ctx: BuildContext) -> Path:
    """NNCF's accuracy-aware quantization against the validation metric: NNCF chooses what stays float."""
    from .openvino_nncf import quantize_accuracy_control

    items, transform, metric = ctx.validation

    def quantize(model, inputs, float_ops):
        q, ctx.float_ops, ctx.quantized_ops, ctx.fake_quantize_nodes = quantize_accuracy_control(
            model,
            inputs,
            items,
            transform,
            metric,
            ctx.max_drop,
            ctx.preset,
            ranking_subset=ctx.ranking_subset,
            ignored=float_ops,
            seven_bit_weights=ctx.seven_bit_weights,
        )
        return q

    return _nncf_build(fp32, out, ctx, quantize)


def _qdq(form: str):
    def build(fp32: Path, out: Path, ctx: BuildContext) -> Path:
        from edgedet.fileio import publish
        from edgedet.manifest import Manifest

        from .onnx_qdq import conv_nodes, quantize_qdq

        with publish(out) as tmp:
            quantize_qdq(
                fp32,
                tmp,
                ctx.tensors if not ctx.ranges.is_file() else None,
                form,
                ctx.method,
                ctx.ranges,
                matching(conv_nodes(fp32), ctx.float_patterns),
                input_name=ctx.input_name,
                reduce_range=ctx.seven_bit_weights,
            )
            Manifest.read(fp32).derive(precision="int8").write(tmp)
        return out

    return build


build_qdq_u8s8 = _qdq("onnxruntime")


def build_qdq_trt(fp32: Path, out: Path, ctx: BuildContext) -> Path:
    """TensorRT's form: NVIDIA ModelOpt's INT8 Q/DQ with everything else in FP16 (modelopt_qdq.py). Node-name regexes
    in ctx.float_patterns (the gate's fallback groups) stay unquantized, in FP16."""
    from edgedet.fileio import publish
    from edgedet.manifest import Manifest

    from .modelopt_qdq import quantize_modelopt

    with publish(out) as tmp:
        ran = quantize_modelopt(fp32, tmp, ctx.tensors, ctx.method, ctx.float_patterns, input_name=ctx.input_name)
        Manifest.read(fp32).derive(precision="int8", extra={"int8_quantizer": ran}).write(tmp)
    return out
