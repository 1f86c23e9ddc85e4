"""`edgedet check --backend trt` from onnx-tensorrt's operator tables (converters/data/trt_operators.json), per TensorRT
version: every supported op passes, every unsupported op and every kind of restriction fails with its rule named."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgedet.converters.trt_check import TABLE, check_tensorrt_onnx, resolve_version, table_versions, tables
from edgedet.errors import InputError

VERSIONS = table_versions()


def _save(path, nodes, inits=None, inputs=(), outputs=("y",), opset=17):
    inits = inits or {}
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]), path)
    return path


def _errors(rep) -> str:
    return " | ".join(f.message for f in rep.findings if f.level == "error")


# inputs whose type the table's Q/DQ rules fix: signed INT8 zero points (and quantized data for DQ)
INPUT_VALUES = {
    ("QuantizeLinear", 2): np.zeros(1, np.int8),
    ("DequantizeLinear", 0): np.ones(1, np.int8),
    ("DequantizeLinear", 2): np.zeros(1, np.int8),
}


def _one_node_model(path, op: str, opset: int):
    """`op` with every input of its ONNX schema fed by a float initializer and default attributes: a graph that
    only the operator table and its restrictions can refuse."""
    try:
        n_inputs = len(onnx.defs.get_schema(op, opset, "").inputs)
    except Exception:  # ops the ONNX standard dropped (ImageScaler, ...): one input
        n_inputs = 1
    names = [f"c{i}" for i in range(max(n_inputs, 1))]
    values = {n: INPUT_VALUES.get((op, i), np.ones(1, np.float32)) for i, n in enumerate(names)}
    return _save(path, [helper.make_node(op, names, ["y"])], values, opset=opset)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_supported_op_passes_and_every_unsupported_op_fails(version, tmp_path):
    table = tables()[version]
    opset = min(table["opset"][1], onnx.defs.onnx_opset_version())
    refused = {}
    for op in table["supported"]:
        rep = check_tensorrt_onnx(_one_node_model(tmp_path / f"{op}.onnx", op, opset), version=version)
        if not rep.ok:
            refused[op] = _errors(rep)
    assert not refused, refused
    for op in table["unsupported"]:
        rep = check_tensorrt_onnx(_one_node_model(tmp_path / f"{op}.onnx", op, opset), version=version)
        assert f"{op} is not in TensorRT {version}'s ONNX operator list" in _errors(rep), op
    assert len(table["supported"]) > 140 and table["opset"][1] >= 17


def test_table_records_its_source():
    data = json.loads(TABLE.read_text())
    assert data["_source"]["repository"] == "onnx/onnx-tensorrt" and data["_source"]["file"] == "docs/operators.md"
    for key, t in data["versions"].items():
        assert re.fullmatch(r"[0-9a-f]{40}", t["onnx_tensorrt_commit"]) and t["release"].startswith(key.split(".")[0])
    assert VERSIONS[0] == "8.6" and VERSIONS[-1].startswith("11.")


def test_version_resolution():
    assert resolve_version(None) == VERSIONS[-1]
    assert resolve_version("8.6.1") == "8.6"
    assert resolve_version("10.3") == "10.1"  # JetPack 6.1/6.2: the newest table at or below it
    assert resolve_version("11.4.1") == VERSIONS[-1]
    with pytest.raises(InputError, match="older than the oldest table"):
        resolve_version("8.5")
    with pytest.raises(InputError, match="must look like"):
        resolve_version("latest")


def _cli(capsys, path, *args):
    from edgedet.cli import main

    rc = main(["check", "--backend", "trt", str(path), *args])
    return rc, capsys.readouterr().out


# ------------------------------------------------------------------ the must-show cases, through the CLI
def test_reciprocal_passes_on_86_and_gelu_on_10(tmp_path, capsys):
    x = [("x", TensorProto.FLOAT, [1, 3, 8, 8])]
    rec = _save(tmp_path / "rec.onnx", [helper.make_node("Reciprocal", ["x"], ["y"])], inputs=x)
    rc, out = _cli(capsys, rec, "--trt-version", "8.6")
    assert rc == 0 and "PASS" in out and "for tensorrt 8.6" in out
    gelu = _save(tmp_path / "gelu.onnx", [helper.make_node("Gelu", ["x"], ["y"])], inputs=x, opset=20)
    for version in ("10.0", "10.16", "11.1"):
        rc, out = _cli(capsys, gelu, "--trt-version", version)
        assert rc == 0 and "PASS" in out, out
    rc, out = _cli(capsys, gelu, "--trt-version", "8.6")  # Gelu is not in 8.6's table, and opset 20 > 17
    assert rc == 1 and "Gelu is not in TensorRT 8.6's ONNX operator list" in out


def test_topk_sorted_0_is_refused(tmp_path, capsys):
    path = _save(
        tmp_path / "topk.onnx",
        [helper.make_node("TopK", ["x", "k"], ["y", "i"], axis=1, sorted=0)],
        {"k": np.array([10], np.int64)},
        inputs=[("x", TensorProto.FLOAT, [1, 100])],
        outputs=("y", "i"),
    )
    rc, out = _cli(capsys, path)  # the newest table
    assert rc == 1 and "TopK `sorted` must be 1" in out and "sorted=0" in out
    rc, out = _cli(capsys, path, "--trt-version", "8.6")  # 8.6's table has no such restriction
    assert rc == 0, out


def test_pad_axes_not_an_initializer_is_refused(tmp_path, capsys):
    path = _save(
        tmp_path / "pad.onnx",
        [
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("Slice", ["s", "zero", "one"], ["axes"]),  # axes computed in the graph
            helper.make_node("Pad", ["x", "pads", "", "axes"], ["y"]),
        ],
        {"pads": np.array([1, 1], np.int64), "zero": np.array([0], np.int64), "one": np.array([1], np.int64)},
        inputs=[("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        opset=18,
    )
    rc, out = _cli(capsys, path, "--trt-version", "10.1")
    assert rc == 1 and "Pad `axes` must be an initializer (TensorRT 10.1, operators.md)" in out
    # from 10.16 on, operators.md no longer lists the restriction: the table says what each release says
    assert _cli(capsys, path, "--trt-version", "10.16")[0] == 0


def test_opset_18_is_refused_for_86(tmp_path, capsys):
    path = _save(
        tmp_path / "o18.onnx",
        [helper.make_node("Relu", ["x"], ["y"])],
        inputs=[("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        opset=18,
    )
    rc, out = _cli(capsys, path, "--trt-version", "8.6")
    assert rc == 1 and "opset 18 is outside TensorRT 8.6's ONNX opset range (up to 17" in out
    assert _cli(capsys, path, "--trt-version", "10.0")[0] == 0


def test_trt_version_must_be_a_version(tmp_path, capsys):
    path = _save(tmp_path / "r.onnx", [helper.make_node("Relu", ["x"], ["y"])], inputs=[("x", TensorProto.FLOAT, [1])])
    assert _cli(capsys, path, "--trt-version", "banana")[0] == 2


# ------------------------------------------------------------------ one failing graph per kind of restriction
X4 = [("x", TensorProto.FLOAT, [1, 3, 8, 8])]
RESTRICTED = [
    # (kind, version, nodes, initializers, inputs, outputs, opset, message)
    (
        "initializer",
        "8.6",
        [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Squeeze", ["x", "s"], ["y"])],
        {},
        X4,
        ("y",),
        13,
        "Squeeze `axes` must be an initializer",
    ),
    (
        "initializer",
        "11.1",
        [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("ReduceSum", ["x", "s"], ["y"])],
        {},
        X4,
        ("y",),
        18,
        "ReduceSum `axes` must be an initializer",
    ),
    (
        "attr_equals",
        "11.1",
        [helper.make_node("Resize", ["x", "", "sc"], ["y"], antialias=1, mode="linear")],
        {"sc": np.array([1, 1, 2, 2], np.float32)},
        X4,
        ("y",),
        18,
        "Resize Antialiasing is not supported",
    ),
    (
        "attr_in",
        "10.1",
        [helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="cubic")],
        {"sc": np.array([1, 1, 2, 2], np.float32)},
        X4,
        ("y",),
        13,
        "Supported resize modes: `nearest`, `linear` (TensorRT 10.1, operators.md): mode=cubic",
    ),
    (
        "attr_all_ones",
        "10.0",
        [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 2])],
        {},
        X4,
        ("y",),
        13,
        "MaxPool `dilations` must be empty or all ones",
    ),
    (
        "output_unused",
        "8.6",
        [helper.make_node("MaxPool", ["x"], ["y", "idx"], kernel_shape=[2, 2])],
        {},
        X4,
        ("y", "idx"),
        13,
        "MaxPool `Indices` output tensor unsupported",
    ),
    (
        "max_value",
        "10.1",  # "less than 3840": K=3840 is refused from 10.1 on
        [helper.make_node("TopK", ["x", "k"], ["y", "i"], axis=1)],
        {"k": np.array([3840], np.int64)},
        [("x", TensorProto.FLOAT, [1, 5000])],
        ("y", "i"),
        13,
        "TopK `K` input must be less than 3840 (TensorRT 10.1, operators.md): K=3840",
    ),
    (
        "max_value",
        "8.6",  # NvInfer.h: "up to 3840"
        [helper.make_node("TopK", ["x", "k"], ["y", "i"], axis=1)],
        {"k": np.array([3841], np.int64)},
        [("x", TensorProto.FLOAT, [1, 5000])],
        ("y", "i"),
        13,
        "TopK K up to 3840 (TensorRT 8.6, NvInfer.h ITopKLayer): K=3841",
    ),
    (
        "types",
        "8.6",
        [helper.make_node("ConstantOfShape", ["s"], ["y"], value=numpy_helper.from_array(np.array([1], np.int32)))],
        {"s": np.array([2, 2], np.int64)},
        (),
        ("y",),
        13,
        "ConstantOfShape types FP32 (TensorRT 8.6, operators.md): got INT32",
    ),
    (
        "types",
        "8.6",
        [helper.make_node("NonZero", ["xi"], ["y"])],
        {},
        [("xi", TensorProto.INT32, [4])],
        ("y",),
        13,
        "NonZero types FP32, FP16 (TensorRT 8.6, operators.md): got INT32",
    ),
]


@pytest.mark.parametrize("case", RESTRICTED, ids=[f"{c[0]}-{c[1]}-{c[2][-1].op_type}" for c in RESTRICTED])
def test_each_restriction_has_a_failing_graph(case, tmp_path):
    kind, version, nodes, inits, inputs, outputs, opset, message = case
    rep = check_tensorrt_onnx(_save(tmp_path / "m.onnx", nodes, inits, inputs, outputs, opset), version=version)
    assert message in _errors(rep), rep.to_dict()["findings"]
    assert any(f.rule.startswith(nodes[-1].op_type + ":") for f in rep.findings if f.level == "error")


def test_the_cases_cover_every_kind_of_restriction_in_the_tables():
    kinds = {r["rule"] for t in tables().values() for e in t["supported"].values() for r in e["rules"]}
    tested = {c[0] for c in RESTRICTED} | {
        "qdq_symmetric"
    }  # Q/DQ: test_tensorrt.py::test_static_check_catches_problems
    assert kinds <= tested, kinds - tested


def test_types_pass_where_the_release_lists_them(tmp_path):
    """ConstantOfShape INT32 is refused on 8.6 (FP32 only) and accepted from 10.1 on."""
    nodes = [helper.make_node("ConstantOfShape", ["s"], ["y"], value=numpy_helper.from_array(np.array([1], np.int32)))]
    path = _save(tmp_path / "c.onnx", nodes, {"s": np.array([2, 2], np.int64)})
    assert not check_tensorrt_onnx(path, version="8.6").ok
    assert check_tensorrt_onnx(path, version="10.1").ok
