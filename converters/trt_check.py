"""Static TensorRT compatibility check of an ONNX file, runnable without TensorRT or a GPU.

Checks what makes TensorRT 8.6-11 reject or mis-build a graph: operators outside the ONNX-TensorRT
support matrix of 8.6 (the oldest target; Mod, NonZero, OneHot, LayerNormalization, GridSample, Trilu and
RoiAlign are supported from 8.5/8.6 on), custom-domain ops that would need plugins (EfficientNMS_TRT and
friends), Q/DQ that TensorRT's explicit quantization cannot take (not signed INT8, non-zero zero-point,
per-channel activation scales, weight scales on an axis other than the output channel), inputs that the parser
requires as initializers (TopK K, NMS thresholds, Unsqueeze axes), TopK K above 3840 (every version), opset
range, and a dynamic-shape profile that covers the batch range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# ONNX ops the ONNX-TensorRT parser supports in TensorRT 8.6 (the oldest target; later versions add more).
TRT_SUPPORTED_OPS = frozenset(
    """
GridSample LayerNormalization Mod NonZero OneHot RoiAlign Trilu
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Celu Clip
Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div Dropout Einsum
Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gemm GlobalAveragePool GlobalLpPool
GlobalMaxPool Greater GreaterOrEqual GRU HardSigmoid HardSwish Identity If ImageScaler InstanceNormalization IsNaN
LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean Min Mul
Neg NonMaxSuppression Not Or Pad ParametricSoftplus Pow PRelu QuantizeLinear RandomUniform RandomUniformLike Range
ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare
Relu Reshape Resize ReverseSequence RNN Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Sigmoid
Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu
Tile TopK Transpose Unsqueeze Upsample Where Xor
""".split()
)
# Inputs the parser needs as initializers/constants: op -> input positions.
MUST_BE_CONSTANT = {
    "TopK": (1,),
    "NonMaxSuppression": (2, 3, 4),
    "Unsqueeze": (1,),
    "Squeeze": (1,),
    "QuantizeLinear": (1, 2),
    "DequantizeLinear": (1, 2),
    "Conv": (1,),
}
TOPK_LIMIT = 3840  # TensorRT's TopK limit, on every version
OPSET_RANGE_86 = (9, 17)  # TensorRT 8.6; 10.x parses up to 20+


@dataclass
class Finding:
    level: str  # error | warning | info
    message: str


@dataclass
class CheckReport:
    path: str
    findings: list[Finding] = field(default_factory=list)
    ops: dict = field(default_factory=dict)
    qdq: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(f.level == "error" for f in self.findings)

    def add(self, level: str, message: str) -> None:
        self.findings.append(Finding(level, message))

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "ok": self.ok,
            "ops": self.ops,
            "qdq": self.qdq,
            "findings": [f.__dict__ for f in self.findings],
        }


def check_tensorrt_onnx(path: str | Path, min_batch: int | None = None, max_batch: int | None = None) -> CheckReport:
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    model = onnx.load(str(path))
    rep = CheckReport(str(path))
    g = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = numpy_helper.to_array(a.t)

    # Weights of a Q/DQ graph reach Conv through [QuantizeLinear ->] DequantizeLinear of an initializer, which
    # TensorRT folds: constant for the parser. Nodes are in topological order, so one pass propagates it.
    for n in g.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.input[0] in consts:
            consts.setdefault(n.output[0], None)

    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < OPSET_RANGE_86[0]:
        rep.add("error", f"opset {opset} is below {OPSET_RANGE_86[0]}")
    elif opset > OPSET_RANGE_86[1]:
        rep.add(
            "warning",
            f"opset {opset}: TensorRT 8.6 (JetPack 5/6) parses up to {OPSET_RANGE_86[1]}; needs TensorRT >= 10",
        )

    counts: dict[str, int] = {}
    for n in g.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
        if n.domain not in ("", "ai.onnx"):
            rep.add("error", f"node {n.name or n.op_type}: custom op {n.domain}::{n.op_type} needs a TensorRT plugin")
            continue
        if n.op_type not in TRT_SUPPORTED_OPS:
            rep.add("error", f"node {n.name or n.op_type}: {n.op_type} is not in TensorRT's ONNX operator list")
        for pos in MUST_BE_CONSTANT.get(n.op_type, ()):
            if pos < len(n.input) and n.input[pos] and n.input[pos] not in consts:
                rep.add("error", f"node {n.name}: input {pos} of {n.op_type} must be an initializer for TensorRT")
        if n.op_type == "TopK" and len(n.input) > 1 and n.input[1] in consts:
            k = int(np.asarray(consts[n.input[1]]).reshape(-1)[0])
            if k > TOPK_LIMIT:
                rep.add("error", f"node {n.name}: TopK K={k} exceeds TensorRT's limit of {TOPK_LIMIT}")
    rep.ops = dict(sorted(counts.items()))
    if any("EfficientNMS" in op or "BatchedNMS" in op for op in counts):
        rep.add("error", "EfficientNMS/BatchedNMS plugins are deprecated (TensorRT 10.12): use NonMaxSuppression")
    if "NonMaxSuppression" in counts:
        rep.add("info", "post-processing in graph: NonMaxSuppression maps to INMSLayer (no plugin)")

    _check_qdq(g, consts, rep)
    _check_inputs(g, rep, min_batch, max_batch)
    return rep


def _check_qdq(g, consts, rep: CheckReport) -> None:
    q = [n for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    if not q:
        return
    bad_zp, bad_type, bad_scale = 0, 0, 0
    for n in q:
        zp = consts.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if zp is None:
            bad_type += 1  # no zero-point means uint8 by default in ONNX
            continue
        if zp.dtype != np.int8:
            bad_type += 1
        if np.any(zp != 0):
            bad_zp += 1
        scale = consts.get(n.input[1])
        if scale is None or np.any(scale <= 0):
            bad_scale += 1
    granularity = _scale_granularity(g, q, consts)
    rep.qdq = {
        "nodes": len(q),
        "non_int8": bad_type,
        "nonzero_zero_point": bad_zp,
        "bad_scale": bad_scale,
        **granularity,
    }
    if granularity["per_channel_activations"]:
        rep.add(
            "error",
            f"{granularity['per_channel_activations']} activation Q/DQ nodes have per-channel scales "
            "(TensorRT takes per-tensor activation scales)",
        )
    if granularity["weight_axis_not_output_channel"]:
        rep.add(
            "error",
            f"{granularity['weight_axis_not_output_channel']} weight Q/DQ nodes are per-channel on an "
            "axis other than the output channel (axis 0)",
        )
    if granularity["per_tensor_weights"]:
        rep.add(
            "warning",
            f"{granularity['per_tensor_weights']} weight Q/DQ nodes are per-tensor: valid, but "
            "per-output-channel scales keep more accuracy",
        )
    if bad_type:
        rep.add("error", f"{bad_type} Q/DQ nodes are not signed INT8 (TensorRT explicit quantization needs int8)")
    if bad_zp:
        rep.add("error", f"{bad_zp} Q/DQ nodes have a non-zero zero-point (TensorRT needs symmetric quantization)")
    if bad_scale:
        rep.add("error", f"{bad_scale} Q/DQ nodes have a missing or non-positive scale")


def _scale_granularity(g, q, consts) -> dict:
    """Weights (a Q/DQ of an initializer) must be per output channel (axis 0) or per tensor; activations per
    tensor."""
    out = {"per_channel_activations": 0, "weight_axis_not_output_channel": 0, "per_tensor_weights": 0}
    for n in q:
        scale = consts.get(n.input[1])
        if scale is None:
            continue
        per_channel = np.asarray(scale).size > 1
        axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
        is_weight = n.input[0] in consts
        if not is_weight and per_channel:
            out["per_channel_activations"] += 1
        elif is_weight and per_channel and axis != 0:
            out["weight_axis_not_output_channel"] += 1
        elif is_weight and not per_channel and n.op_type == "DequantizeLinear":
            out["per_tensor_weights"] += 1
    return out


def _check_inputs(g, rep: CheckReport, min_batch, max_batch) -> None:
    init = {i.name for i in g.initializer}
    for inp in g.input:
        if inp.name in init:
            continue
        dims = inp.type.tensor_type.shape.dim
        dynamic = [i for i, d in enumerate(dims) if not d.HasField("dim_value")]
        if [i for i in dynamic if i != 0]:
            rep.add("error", f"input {inp.name}: only the batch dimension may be dynamic (dims {dynamic})")
        if 0 in dynamic:
            if min_batch is None or max_batch is None:
                rep.add("warning", f"input {inp.name}: dynamic batch needs an optimisation profile (min/opt/max)")
            elif not 1 <= min_batch <= max_batch:
                rep.add("error", f"profile batch range {min_batch}..{max_batch} is invalid")
            else:
                rep.add("info", f"input {inp.name}: dynamic batch, profile {min_batch}..{max_batch}")
        elif min_batch is not None and dims and dims[0].dim_value and not (min_batch <= dims[0].dim_value <= max_batch):
            rep.add(
                "error",
                f"input {inp.name}: static batch {dims[0].dim_value} outside the requested {min_batch}..{max_batch}",
            )
