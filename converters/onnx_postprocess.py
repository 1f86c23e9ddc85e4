"""Append EfficientDet post-processing to an ONNX graph using standard ops only.

logits (B, A, C) + deltas (B, A, 4) ->
  num_detections (B,) int64, boxes (B, D, 4) xyxy float32, scores (B, D) float32, classes (B, D) int64 (-1 = empty)

TopK over anchor x class logits -> decode against constant anchors -> clip to the input -> per-class
NonMaxSuppression (scores shaped (B, C, K): each candidate scores only in its own class) -> fixed-size top-D.
Boxes enter the NMS in input pixels (at most the input size, 1536 for D7), never shifted by a class offset, so
the NMS gives the same result in FP16 arithmetic as in FP32 (a class offset of 89 x 1537 would overflow FP16's
65504). Every op (TopK, Gather, GatherElements, Equal, Where, NonMaxSuppression, ScatterND) runs natively in
ONNX Runtime and OpenVINO, and TensorRT's ONNX parser maps NonMaxSuppression to INMSLayer: no plugins.
TopK's K is capped at 3839: onnx-tensorrt's operators.md (10.1 on) says K must be less than 3840.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgedet.manifest import GRAPH_OUTPUTS, HOST_OUTPUTS

OUTPUTS = GRAPH_OUTPUTS
TRT_TOPK_LIMIT = 3839  # below 3840 (converters/data/trt_operators.json, TensorRT >= 10.1)


class _Graph:
    """Nodes and constants appended to a graph, named pp_*."""

    def __init__(self, graph):
        self.g, self.nodes = graph, []

    def const(self, name: str, value) -> str:
        self.g.initializer.append(numpy_helper.from_array(np.asarray(value), f"pp_{name}"))
        return f"pp_{name}"

    @staticmethod
    def _name(output: str) -> str:
        return output if output in GRAPH_OUTPUTS else f"pp_{output}"

    def add(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        return self.add_multi(op, inputs, [output], **attrs)[0]

    def add_multi(self, op: str, inputs: list[str], outputs: list[str], **attrs) -> list[str]:
        outputs = [self._name(o) for o in outputs]
        self.nodes.append(helper.make_node(op, inputs, outputs, name=f"pp_node_{outputs[0]}", **attrs))
        return outputs

    def expand4(self, index: str, prefix: str) -> str:
        """(B, N) index -> (B, N, 4), to gather whole boxes with GatherElements."""
        u = self.add("Unsqueeze", [index, self.c["ax_last"]], f"{prefix}3")
        shape = self.add("Shape", [u], f"{prefix}3_shape")
        bn = self.add("Slice", [shape, self.c["zero_i"], self.c["two_i"]], f"{prefix}_bn")
        bn4 = self.add("Concat", [bn, self.c["four"]], f"{prefix}_bn4", axis=0)
        return self.add("Expand", [u, bn4], f"{prefix}4")


def _constants(pg: _Graph, anchors, image_hw, num_classes, k, d, iou_threshold, score_threshold) -> dict:
    h, w = image_hw
    a = anchors.astype(np.float64)  # anchors as (yc, xc, ha, wa): center = t_yx * hw + c, size = exp(t_hw) * hw
    anc = np.stack([(a[:, 0] + a[:, 2]) / 2, (a[:, 1] + a[:, 3]) / 2, a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]], 1)
    values = {
        "anchors": anc.astype(np.float32),
        "k": np.array([k], np.int64),
        "d": np.array([d], np.int64),
        "nc": np.array(num_classes, np.int64),
        "flat_shape": np.array([0, -1], np.int64),
        "half": np.array(0.5, np.float32),
        "zero_f": np.array(0.0, np.float32),
        "neg": np.array(-1.0, np.float32),
        "minus1": np.array(-1, np.int64),
        "four": np.array([4], np.int64),
        "one_dim": np.array([1], np.int64),
        "ax_last": np.array([-1], np.int64),
        "xyxy_order": np.array([1, 0, 3, 2], np.int64),
        "clip_max": np.array([h, w, h, w], np.float32),
        "max_out": np.array([d], np.int64),
        "iou": np.array([iou_threshold], np.float32),
        "score_thr": np.array([score_threshold], np.float32),
        "sel_cols": np.array([0, 2], np.int64),
        "split2": np.array([2, 2], np.int64),
        "zero_i": np.array([0], np.int64),
        "two_i": np.array([2], np.int64),
        "class_range": np.arange(num_classes, dtype=np.int64).reshape(1, num_classes, 1),
    }
    return {name: pg.const(name, v) for name, v in values.items()}


def _candidates(pg: _Graph, logits: str) -> tuple[str, str, str]:
    """Top-K over anchor x class logits: (scores (B, K), anchor index (B, K), class (B, K))."""
    c = pg.c
    flat = pg.add("Reshape", [logits, c["flat_shape"]], "flat")  # (B, A*C)
    top_logits, top_idx = pg.add_multi("TopK", [flat, c["k"]], ["top_logits", "top_idx"], axis=1)
    anchor_idx = pg.add("Div", [top_idx, c["nc"]], "anchor_idx")
    base = pg.add("Mul", [anchor_idx, c["nc"]], "cls_base")  # idx % C without Mod
    cls = pg.add("Sub", [top_idx, base], "cls")
    return pg.add("Sigmoid", [top_logits], "scores_k"), anchor_idx, cls


def _decode(pg: _Graph, deltas: str, anchor_idx: str) -> str:
    """Candidate boxes (B, K, 4) as y1, x1, y2, x2 in input pixels, clipped to the input."""
    c = pg.c
    cand_deltas = pg.add("GatherElements", [deltas, pg.expand4(anchor_idx, "aidx")], "cand_deltas", axis=1)
    cand_anchors = pg.add("Gather", [c["anchors"], anchor_idx], "cand_anchors", axis=0)
    t_yx, t_hw = pg.add_multi("Split", [cand_deltas, c["split2"]], ["t_yx", "t_hw"], axis=2)
    a_c, a_hw = pg.add_multi("Split", [cand_anchors, c["split2"]], ["a_c", "a_hw"], axis=2)
    center = pg.add("Add", [pg.add("Mul", [t_yx, a_hw], "c0"), a_c], "center")
    size = pg.add("Mul", [pg.add("Exp", [t_hw], "e_hw"), a_hw], "size")
    half = pg.add("Mul", [size, c["half"]], "half_size")
    yx1 = pg.add("Sub", [center, half], "yx1")
    yx2 = pg.add("Add", [center, half], "yx2")
    raw = pg.add("Concat", [yx1, yx2], "yxyx_raw", axis=2)
    return pg.add("Min", [pg.add("Max", [raw, c["zero_f"]], "yxyx_lo"), c["clip_max"]], "yxyx")


def _per_class_nms(pg: _Graph, boxes: str, scores: str, cls: str) -> str:
    """NonMaxSuppression per class: scores (B, C, K) hold each candidate's score in its own class row and 0
    elsewhere (below the score threshold, so ignored). Returns a (B, K) 0/1 float mask of kept candidates."""
    c = pg.c
    is_cls = pg.add("Equal", [c["class_range"], pg.add("Unsqueeze", [cls, c["one_dim"]], "cls_b1k")], "is_cls")
    scores_b1k = pg.add("Unsqueeze", [scores, c["one_dim"]], "scores_b1k")
    nms_scores = pg.add("Where", [is_cls, scores_b1k, c["zero_f"]], "nms_scores")  # (B, C, K)
    selected = pg.add(
        "NonMaxSuppression", [boxes, nms_scores, c["max_out"], c["iou"], c["score_thr"]], "selected", center_point_box=0
    )  # (S, 3): batch, class, cand
    sel_bk = pg.add("Gather", [selected, c["sel_cols"]], "sel_bk", axis=1)  # (S, 2) = (batch, cand)
    num_sel = pg.add("Slice", [pg.add("Shape", [selected], "sel_shape"), c["zero_i"], c["one_dim"]], "num_sel")
    ones = pg.add("ConstantOfShape", [num_sel], "ones_s", value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]))
    zeros = pg.add(
        "ConstantOfShape",
        [pg.add("Shape", [scores], "bk_shape")],
        "zeros_bk",
        value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0]),
    )
    return pg.add("ScatterND", [zeros, sel_bk, ones], "keep")  # (B, K) 0/1


def _outputs(pg: _Graph, keep: str, scores: str, cls: str, yxyx: str) -> None:
    """Fixed-size outputs: the best D kept candidates by score, padded with zeros / class -1."""
    c = pg.c
    masked = pg.add("Where", [pg.add("Greater", [keep, c["zero_f"]], "keep_b"), scores, c["neg"]], "masked")
    top_scores, top_pos = pg.add_multi("TopK", [masked, c["d"]], ["top_scores", "top_pos"], axis=1)  # (B, D)
    valid = pg.add("Greater", [top_scores, c["zero_f"]], "valid")
    valid_f = pg.add("Cast", [valid], "valid_f", to=TensorProto.FLOAT)  # kept, at most D (all classes)
    num_f = pg.add("ReduceSum", [valid_f, c["one_dim"]], "num_f", keepdims=0)
    pg.add("Cast", [num_f], "num_detections", to=TensorProto.INT64)
    pg.add("Where", [valid, top_scores, c["zero_f"]], "scores")
    top_cls = pg.add("GatherElements", [cls, top_pos], "top_cls", axis=1)
    pg.add("Where", [valid, top_cls, c["minus1"]], "classes")
    top_yxyx = pg.add("GatherElements", [yxyx, pg.expand4(top_pos, "pos")], "top_yxyx", axis=1)
    top_xyxy = pg.add("Gather", [top_yxyx, c["xyxy_order"]], "top_xyxy", axis=2)
    pg.add("Where", [pg.add("Unsqueeze", [valid, c["ax_last"]], "valid3"), top_xyxy, c["zero_f"]], "boxes")


def append_postprocess(
    model: onnx.ModelProto,
    anchors: np.ndarray,
    image_hw: tuple[int, int],
    num_classes: int,
    score_threshold: float,
    iou_threshold: float = 0.5,
    max_candidates: int = 1000,
    max_det: int = 100,
) -> onnx.ModelProto:
    g = model.graph
    k = int(min(max_candidates, anchors.shape[0] * num_classes, TRT_TOPK_LIMIT))
    d = int(min(max_det, k))
    pg = _Graph(g)
    pg.c = _constants(pg, anchors, image_hw, num_classes, k, d, iou_threshold, score_threshold)
    logits, deltas = HOST_OUTPUTS
    scores, anchor_idx, cls = _candidates(pg, logits)
    yxyx = _decode(pg, deltas, anchor_idx)
    keep = _per_class_nms(pg, yxyx, scores, cls)
    _outputs(pg, keep, scores, cls, yxyx)
    g.node.extend(pg.nodes)
    bdim = g.output[0].type.tensor_type.shape.dim[0]
    bdim = bdim.dim_param or bdim.dim_value
    del g.output[:]
    g.output.extend(
        [
            helper.make_tensor_value_info("num_detections", TensorProto.INT64, [bdim]),
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [bdim, d, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [bdim, d]),
            helper.make_tensor_value_info("classes", TensorProto.INT64, [bdim, d]),
        ]
    )
    return model
