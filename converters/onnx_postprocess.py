"""Append EfficientDet post-processing to an ONNX graph using standard ops only.

logits (B, A, C) + deltas (B, A, 4) ->
  num_detections (B,) int64, boxes (B, D, 4) xyxy float32, scores (B, D) float32, classes (B, D) int64 (-1 = empty)

TopK over anchor x class logits -> decode against constant anchors -> clip to the input -> per-class
NonMaxSuppression (class-offset trick, one NMS class) -> fixed-size top-D. Every op (TopK, Gather,
GatherElements, NonMaxSuppression, ScatterND, Where) runs natively in ONNX Runtime and OpenVINO, and
TensorRT's ONNX parser maps NonMaxSuppression to INMSLayer: no custom plugins (no EfficientNMS_TRT).
TensorRT < 10 limits TopK to K <= 3840, so max_candidates is capped there.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUTPUTS = ("num_detections", "boxes", "scores", "classes")
TRT_TOPK_LIMIT = 3840


def append_postprocess(model: onnx.ModelProto, anchors: np.ndarray, image_hw: tuple[int, int], num_classes: int,
                       score_threshold: float, iou_threshold: float = 0.5, max_candidates: int = 1000,
                       max_det: int = 100) -> onnx.ModelProto:
    g = model.graph
    num_anchors = anchors.shape[0]
    k = int(min(max_candidates, num_anchors * num_classes, TRT_TOPK_LIMIT))
    d = int(min(max_det, k))
    h, w = image_hw
    # anchors as (yc, xc, ha, wa): decode is then center = t_yx * hw + c, size = exp(t_hw) * hw
    a = anchors.astype(np.float64)
    anc = np.stack([(a[:, 0] + a[:, 2]) / 2, (a[:, 1] + a[:, 3]) / 2, a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]], 1)
    consts = {
        "pp_anchors": anc.astype(np.float32),
        "pp_k": np.array([k], np.int64), "pp_d": np.array([d], np.int64),
        "pp_nc": np.array(num_classes, np.int64), "pp_flat_shape": np.array([0, -1], np.int64),
        "pp_half": np.array(0.5, np.float32), "pp_zero_f": np.array(0.0, np.float32),
        "pp_neg": np.array(-1.0, np.float32), "pp_minus1": np.array(-1, np.int64),
        "pp_four": np.array([4], np.int64), "pp_one_dim": np.array([1], np.int64),
        "pp_ax_last": np.array([-1], np.int64), "pp_xyxy_order": np.array([1, 0, 3, 2], np.int64),
        "pp_clip_max": np.array([h, w, h, w], np.float32), "pp_offset": np.array(float(max(h, w) + 1), np.float32),
        "pp_max_out": np.array([d], np.int64), "pp_iou": np.array([iou_threshold], np.float32),
        "pp_score_thr": np.array([score_threshold], np.float32),
        "pp_sel_cols": np.array([0, 2], np.int64), "pp_split2": np.array([2, 2], np.int64),
    }
    for name, value in consts.items():
        g.initializer.append(numpy_helper.from_array(value, name))

    n = []
    add = lambda op, ins, outs, **kw: n.append(helper.make_node(op, ins, outs, name=f"pp_{outs[0]}", **kw))
    add("Reshape", ["logits", "pp_flat_shape"], ["pp_flat"])                       # (B, A*C)
    add("TopK", ["pp_flat", "pp_k"], ["pp_top_logits", "pp_top_idx"], axis=1)      # (B, K)
    add("Div", ["pp_top_idx", "pp_nc"], ["pp_anchor_idx"])
    add("Mul", ["pp_anchor_idx", "pp_nc"], ["pp_cls_base"])                      # idx % C without Mod,
    add("Sub", ["pp_top_idx", "pp_cls_base"], ["pp_cls"])                          # which TensorRT 8.x lacks
    add("Sigmoid", ["pp_top_logits"], ["pp_scores"])
    # gather candidate deltas (B, K, 4) and anchors (B, K, 4)

    def expand4(index: str, prefix: str) -> str:
        """(B, N) index -> (B, N, 4), to gather whole boxes with GatherElements."""
        add("Unsqueeze", [index, "pp_ax_last"], [f"{prefix}3"])
        add("Shape", [f"{prefix}3"], [f"{prefix}3_shape"])
        add("Slice", [f"{prefix}3_shape", "pp_zero_i", "pp_two_i"], [f"{prefix}_bn"])
        add("Concat", [f"{prefix}_bn", "pp_four"], [f"{prefix}_bn4"], axis=0)
        add("Expand", [f"{prefix}3", f"{prefix}_bn4"], [f"{prefix}4"])
        return f"{prefix}4"

    add("GatherElements", ["deltas", expand4("pp_anchor_idx", "pp_aidx")], ["pp_cand_deltas"], axis=1)
    add("Gather", ["pp_anchors", "pp_anchor_idx"], ["pp_cand_anchors"], axis=0)
    add("Split", ["pp_cand_deltas", "pp_split2"], ["pp_t_yx", "pp_t_hw"], axis=2)
    add("Split", ["pp_cand_anchors", "pp_split2"], ["pp_a_c", "pp_a_hw"], axis=2)
    add("Mul", ["pp_t_yx", "pp_a_hw"], ["pp_c0"])
    add("Add", ["pp_c0", "pp_a_c"], ["pp_center"])
    add("Exp", ["pp_t_hw"], ["pp_e_hw"])
    add("Mul", ["pp_e_hw", "pp_a_hw"], ["pp_size"])
    add("Mul", ["pp_size", "pp_half"], ["pp_half_size"])
    add("Sub", ["pp_center", "pp_half_size"], ["pp_yx1"])
    add("Add", ["pp_center", "pp_half_size"], ["pp_yx2"])
    add("Concat", ["pp_yx1", "pp_yx2"], ["pp_yxyx_raw"], axis=2)
    add("Max", ["pp_yxyx_raw", "pp_zero_f"], ["pp_yxyx_lo"])
    add("Min", ["pp_yxyx_lo", "pp_clip_max"], ["pp_yxyx"])                        # clipped to the input
    # per-class NMS as one class: shift each class into its own coordinate range
    add("Cast", ["pp_cls"], ["pp_cls_f"], to=TensorProto.FLOAT)
    add("Mul", ["pp_cls_f", "pp_offset"], ["pp_shift1"])
    add("Unsqueeze", ["pp_shift1", "pp_ax_last"], ["pp_shift"])
    add("Add", ["pp_yxyx", "pp_shift"], ["pp_nms_boxes"])
    add("Unsqueeze", ["pp_scores", "pp_one_dim"], ["pp_nms_scores"])              # (B, 1, K)
    add("NonMaxSuppression", ["pp_nms_boxes", "pp_nms_scores", "pp_max_out", "pp_iou", "pp_score_thr"],
        ["pp_selected"], center_point_box=0)                                         # (S, 3)
    # fixed-size outputs: mark selected candidates, take the best D by score
    add("Gather", ["pp_selected", "pp_sel_cols"], ["pp_sel_bk"], axis=1)           # (S, 2) = (batch, cand)
    add("Shape", ["pp_selected"], ["pp_sel_shape"])
    add("Slice", ["pp_sel_shape", "pp_zero_i", "pp_one_dim"], ["pp_num_sel"])
    add("ConstantOfShape", ["pp_num_sel"], ["pp_ones_s"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]))
    add("Shape", ["pp_scores"], ["pp_bk_shape"])
    add("ConstantOfShape", ["pp_bk_shape"], ["pp_zeros_bk"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0]))
    add("ScatterND", ["pp_zeros_bk", "pp_sel_bk", "pp_ones_s"], ["pp_keep"])        # (B, K) 0/1
    add("Greater", ["pp_keep", "pp_zero_f"], ["pp_keep_b"])
    add("Where", ["pp_keep_b", "pp_scores", "pp_neg"], ["pp_masked"])
    add("TopK", ["pp_masked", "pp_d"], ["pp_top_scores", "pp_top_pos"], axis=1)     # (B, D)
    add("Greater", ["pp_top_scores", "pp_zero_f"], ["pp_valid"])
    add("ReduceSum", ["pp_keep", "pp_one_dim"], ["pp_num_f"], keepdims=0)
    add("Cast", ["pp_num_f"], ["num_detections"], to=TensorProto.INT64)
    add("Where", ["pp_valid", "pp_top_scores", "pp_zero_f"], ["scores"])
    add("GatherElements", ["pp_cls", "pp_top_pos"], ["pp_top_cls"], axis=1)
    add("Where", ["pp_valid", "pp_top_cls", "pp_minus1"], ["classes"])
    add("GatherElements", ["pp_yxyx", expand4("pp_top_pos", "pp_pos")], ["pp_top_yxyx"], axis=1)
    add("Gather", ["pp_top_yxyx", "pp_xyxy_order"], ["pp_top_xyxy"], axis=2)
    add("Unsqueeze", ["pp_valid", "pp_ax_last"], ["pp_valid3"])
    add("Where", ["pp_valid3", "pp_top_xyxy", "pp_zero_f"], ["boxes"])
    for name, value in {"pp_zero_i": np.array([0], np.int64), "pp_two_i": np.array([2], np.int64)}.items():
        g.initializer.append(numpy_helper.from_array(value, name))

    g.node.extend(n)
    batch = g.output[0].type.tensor_type.shape.dim[0]
    bdim = batch.dim_param or batch.dim_value
    del g.output[:]
    g.output.extend([
        helper.make_tensor_value_info("num_detections", TensorProto.INT64, [bdim]),
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [bdim, d, 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, [bdim, d]),
        helper.make_tensor_value_info("classes", TensorProto.INT64, [bdim, d]),
    ])
    return model
