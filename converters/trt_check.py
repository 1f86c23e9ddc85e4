"""Static TensorRT compatibility check of an ONNX file, runnable without TensorRT or a GPU, per TensorRT version.

The rules are data: converters/data/trt_operators.json holds onnx-tensorrt's operator support matrix
(docs/operators.md) of each TensorRT release, extracted by typecheck/extract_trt_operators.py with its source
commit. For a target version (`version`; default the installed TensorRT, else the newest table; a version between
two tables takes the older, so nothing a release added later is assumed) the check reports, each finding naming its
rule:
  * the opset against the release's opset range (8.6: up to 17);
  * operators the release does not support, and custom-domain ops that would need plugins;
  * each supported operator's restrictions: inputs that must be initializers (Pad/Reduce axes, ...), attribute
    values (TopK `sorted`, Resize modes, pooling dilations), maximum values (TopK K), unused outputs, and the
    types of ConstantOfShape and NonZero;
  * Q/DQ that TensorRT's explicit quantization cannot take (not signed INT8, non-zero zero point, per-channel
    activation scales, weight scales on an axis other than the output channel), and a dynamic-shape profile that
    covers the batch range.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgedet.errors import InputError

TABLE = Path(__file__).parent / "data" / "trt_operators.json"
# names the tables use for an ONNX input that the ONNX schema names otherwise (Dropout; "is_traning" is the 10.1
# table's spelling)
INPUT_ALIASES = {"is_training": "training_mode", "is_traning": "training_mode"}
ONNX_TYPES = {1: "FP32", 10: "FP16", 16: "BF16", 6: "INT32", 7: "INT64", 3: "INT8", 2: "UINT8", 9: "BOOL", 11: "DOUBLE"}
# what the tables' notes say TensorRT casts down ("limited support": INT64 -> INT32, DOUBLE -> FLOAT)
CAST_DOWN = {"INT64": "INT32", "DOUBLE": "FP32"}


@dataclass
class Finding:
    level: str  # error | warning | info
    message: str
    rule: str = ""  # the rule that made it: "opset", "operator", "<Op>: <restriction>", "qdq", "profile"


@dataclass
class CheckReport:
    path: str
    tensorrt: str = ""  # the table the check used
    findings: list[Finding] = field(default_factory=list)
    ops: dict = field(default_factory=dict)
    qdq: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(f.level == "error" for f in self.findings)

    def add(self, level: str, message: str, rule: str = "") -> None:
        self.findings.append(Finding(level, message, rule))

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "tensorrt": self.tensorrt,
            "ok": self.ok,
            "ops": self.ops,
            "qdq": self.qdq,
            "findings": [f.__dict__ for f in self.findings],
        }


@functools.lru_cache(maxsize=1)
def tables() -> dict:
    return json.loads(TABLE.read_text())["versions"]


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def table_versions() -> list[str]:
    return sorted(tables(), key=_key)


def installed_version() -> str | None:
    """The version of the TensorRT importable here, or None (nothing is imported when it is absent)."""
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        return None
    try:
        import tensorrt

        return str(tensorrt.__version__)
    except Exception:  # a broken install: the check still runs, against the newest table
        return None


def resolve_version(version: str | None) -> str:
    """The table for a TensorRT version: the newest table at or below it (default: the newest table)."""
    known = table_versions()
    if version is None:
        return known[-1]
    try:
        wanted = _key(str(version))
    except ValueError:
        wanted = ()
    if not wanted:
        raise InputError(f"--trt-version must look like 8.6, 10.3 or 11.1, got {version!r}")
    at_or_below = [v for v in known if _key(v) <= wanted]
    if not at_or_below:
        raise InputError(f"TensorRT {version} is older than the oldest table ({known[0]}); tables: {', '.join(known)}")
    return at_or_below[-1]


def check_tensorrt_onnx(
    path: str | Path, min_batch: int | None = None, max_batch: int | None = None, version: str | None = None
) -> CheckReport:
    import onnx

    version = version or installed_version()
    key = resolve_version(version)
    table = tables()[key]
    path = Path(path)
    model = onnx.load(str(path))
    rep = CheckReport(str(path), tensorrt=key)
    if version is not None and key != str(version):
        rep.add("info", f"TensorRT {version}: checked against the {key} table (the newest at or below it)", "version")
    g = model.graph
    consts = _constants(g)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    _check_opset(opset, key, table, rep)
    types = _value_types(model)

    counts: dict[str, int] = {}
    for n in g.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
        where = f"node {n.name or n.op_type}"
        if n.domain not in ("", "ai.onnx"):
            rep.add("error", f"{where}: custom op {n.domain}::{n.op_type} needs a TensorRT plugin", "operator")
            continue
        entry = table["supported"].get(n.op_type)
        if entry is None:
            listed = "listed as unsupported" if n.op_type in table["unsupported"] else "not listed"
            rep.add(
                "error",
                f"{where}: {n.op_type} is not in TensorRT {key}'s ONNX operator list ({listed} in operators.md)",
                "operator",
            )
            continue
        for rule in entry["rules"]:
            _apply(rule, n, opset, consts, types, key, where, rep)
    rep.ops = dict(sorted(counts.items()))
    if "NonMaxSuppression" in counts:
        rep.add("info", "post-processing in graph: NonMaxSuppression maps to INMSLayer (no plugin)")

    _check_qdq(g, consts, rep)
    _check_inputs(g, rep, min_batch, max_batch)
    return rep


def _constants(g) -> dict:
    """Tensors known at build time: initializers, Constant outputs, and [Q ->] DQ of an initializer (TensorRT folds
    the weights of a Q/DQ graph; the value is not needed, so it is None). Nodes are in topological order."""
    from onnx import numpy_helper

    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = numpy_helper.to_array(a.t)
        elif n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.input[0] in consts:
            consts.setdefault(n.output[0], None)
    return consts


def _value_types(model) -> dict[str, str]:
    """Tensor name -> type name (FP32, INT64, ...), from ONNX shape inference where it succeeds."""
    import onnx

    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # a graph shape inference cannot follow: types from what the file states
        pass
    g = model.graph
    out = {i.name: ONNX_TYPES.get(i.data_type, str(i.data_type)) for i in g.initializer}
    for v in list(g.input) + list(g.value_info) + list(g.output):
        t = v.type.tensor_type.elem_type
        if t:
            out[v.name] = ONNX_TYPES.get(t, str(t))
    return out


def _check_opset(opset: int, key: str, table: dict, rep: CheckReport) -> None:
    lo, hi = table["opset"]
    span = f"{lo}..{hi}" if lo is not None else f"up to {hi}"
    if (lo is not None and opset < lo) or opset > hi:
        rep.add(
            "error",
            f"opset {opset} is outside TensorRT {key}'s ONNX opset range ({span}, operators.md)"
            + (
                ": export with --opset 17 (calibrate's TensorRT INT8 form is opset 19, for TensorRT >= 10 only)"
                if key == "8.6" and opset > hi
                else ""
            ),
            "opset",
        )


def _schema(op: str, opset: int):
    import onnx

    try:
        return onnx.defs.get_schema(op, opset, "")
    except Exception:  # an op the installed onnx does not define at this opset
        return None


def _input(n, name: str, opset: int) -> str | None:
    """The tensor feeding the ONNX input called `name` (table spelling), or None when absent."""
    schema = _schema(n.op_type, opset)
    if schema is None:
        return None
    names = [i.name for i in schema.inputs]
    name = INPUT_ALIASES.get(name, name)
    if name not in names:
        return None
    pos = names.index(name)
    return n.input[pos] if pos < len(n.input) and n.input[pos] else None


def _attr(n, name: str, opset: int):
    from onnx import helper

    for a in n.attribute:
        if a.name == name:
            value = helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    schema = _schema(n.op_type, opset)
    if schema is not None and name in schema.attributes:
        default = schema.attributes[name].default_value
        if default.name:  # the schema has a default
            value = helper.get_attribute_value(default)
            return value.decode() if isinstance(value, bytes) else value
    return None


def _type_ok(found: str | None, allowed: list[str]) -> bool:
    return found is None or found in allowed or CAST_DOWN.get(found) in allowed


def _apply(rule: dict, n, opset: int, consts: dict, types: dict, key: str, where: str, rep: CheckReport) -> None:
    """One restriction of the table on one node; an error names the rule as operators.md words it."""
    kind, tag = rule["rule"], f"{n.op_type}: {rule['text']}"
    source = rule.get("source", "operators.md")
    said = f"{where}: {n.op_type} {rule['text']} (TensorRT {key}, {source})"
    if kind == "initializer":
        tensor = _input(n, rule["input"], opset)
        if tensor is not None and tensor not in consts:
            rep.add("error", f"{said}: input {rule['input']} ('{tensor}') is computed in the graph", tag)
    elif kind == "attr_equals":
        value = _attr(n, rule["attr"], opset)
        if value is not None and value != rule["value"]:
            rep.add("error", f"{said}: {rule['attr']}={value}", tag)
    elif kind == "attr_in":
        value = _attr(n, rule["attr"], opset)
        if value is not None and value not in rule["values"]:
            rep.add("error", f"{said}: {rule['attr']}={value}", tag)
    elif kind == "attr_all_ones":
        value = _attr(n, rule["attr"], opset)
        if value and any(int(v) != 1 for v in value):
            rep.add("error", f"{said}: {rule['attr']}={list(value)}", tag)
    elif kind == "output_unused":
        i = rule["output"]
        if i < len(n.output) and n.output[i]:
            rep.add("error", f"{said}: output {i} ('{n.output[i]}') is used", tag)
    elif kind == "max_value":
        tensor = _input(n, rule["input"], opset)
        if tensor is None:
            return
        value = consts.get(tensor)
        if value is None:
            rep.add("warning", f"{said}: {rule['input']} is computed at run time and cannot be checked here", tag)
        elif int(np.asarray(value).reshape(-1)[0]) > rule["max"]:
            rep.add("error", f"{said}: {rule['input']}={int(np.asarray(value).reshape(-1)[0])}", tag)
    elif kind == "types":
        found = _typed(rule["where"], n, types)
        if not _type_ok(found, rule["types"]):
            rep.add("error", f"{said}: got {found}", tag)
    # "qdq_symmetric": the Q/DQ pass below checks zero points


def _typed(where: str, n, types: dict) -> str | None:
    if where == "value":  # ConstantOfShape: the type of its `value` attribute (FP32 zero when absent)
        t = next((a.t.data_type for a in n.attribute if a.name == "value"), 1)
        return ONNX_TYPES.get(t, str(t))
    return types.get(n.input[0]) if n.input else None  # input0


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
            "qdq",
        )
    if granularity["weight_axis_not_output_channel"]:
        rep.add(
            "error",
            f"{granularity['weight_axis_not_output_channel']} weight Q/DQ nodes are per-channel on an "
            "axis other than the output channel (axis 0)",
            "qdq",
        )
    if granularity["per_tensor_weights"]:
        rep.add(
            "warning",
            f"{granularity['per_tensor_weights']} weight Q/DQ nodes are per-tensor: valid, but "
            "per-output-channel scales keep more accuracy",
            "qdq",
        )
    if bad_type:
        rep.add(
            "error", f"{bad_type} Q/DQ nodes are not signed INT8 (TensorRT explicit quantization needs int8)", "qdq"
        )
    if bad_zp:
        rep.add(
            "error", f"{bad_zp} Q/DQ nodes have a non-zero zero-point (TensorRT needs symmetric quantization)", "qdq"
        )
    if bad_scale:
        rep.add("error", f"{bad_scale} Q/DQ nodes have a missing or non-positive scale", "qdq")


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
            rep.add("error", f"input {inp.name}: only the batch dimension may be dynamic (dims {dynamic})", "profile")
        if 0 in dynamic:
            if min_batch is None or max_batch is None:
                rep.add(
                    "warning", f"input {inp.name}: dynamic batch needs an optimisation profile (min/opt/max)", "profile"
                )
            elif not 1 <= min_batch <= max_batch:
                rep.add("error", f"profile batch range {min_batch}..{max_batch} is invalid", "profile")
            else:
                rep.add("info", f"input {inp.name}: dynamic batch, profile {min_batch}..{max_batch}", "profile")
        elif min_batch is not None and dims and dims[0].dim_value and not (min_batch <= dims[0].dim_value <= max_batch):
            rep.add(
                "error",
                f"input {inp.name}: static batch {dims[0].dim_value} outside the requested {min_batch}..{max_batch}",
                "profile",
            )
