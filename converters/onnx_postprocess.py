"""Append EfficientDet post-processing to an ONNX graph using standard ops only.

logits (B, A, C) + deltas (B, A, 4) -> the best D detections per image, written in one of the output forms of
edgedet.postprocess.OUTPUT_FORMS (FORM_WRITERS below, one function per form):
  edgedet       num_detections (B,) int64, boxes (B, D, 4) xyxy float32, scores (B, D), classes (B, D) int64 (-1 pad)
  efficientnms  num_detections (B, 1) int32, detection_boxes (B, D, 4), detection_scores (B, D),
                detection_classes (B, D) int32 (zero padding): TensorRT's EfficientNMS_TRT plugin layout, which
                DeepStream's stock NvDsInferParseCustomEfficientNMS parser reads
  ssd           detection_out [1, 1, B*D, 7]: image id (-1 pad), label, confidence, x_min, y_min, x_max, y_max
                normalised to the input (OpenVINO DetectionOutput: model_api's SSD wrapper, Frigate's ssd type)
  yolonas       detections [B*D, 7]: batch index, x_min, y_min, x_max, y_max (pixels), confidence, class (-1 pad)
                (YOLO-NAS' flat format: Frigate's yolonas type, the one post-NMS layout its ONNX detector reads)

The edgedet form also takes the run-time NMS options as graph inputs with defaults (ONNX initializers listed as
graph inputs): iou_threshold (1,) float, max_det (1,) int64 (at most D) and class_mask (C,) float (1 keep, 0 drop).
ONNX Runtime lets a caller override them; OpenVINO and TensorRT fold them into constants (fixed at export).

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
from edgedet.postprocess import OUTPUT_FORMS

OUTPUTS = GRAPH_OUTPUTS
TRT_TOPK_LIMIT = 3839  # below 3840 (converters/data/trt_operators.json, TensorRT >= 10.1)
# run-time NMS option -> graph input name (the edgedet form)
RUNTIME_INPUTS = {"iou_threshold": "iou_threshold", "max_det": "max_det", "classes": "class_mask"}
_FORM_NAMES = {n for f in OUTPUT_FORMS.values() for n in f.outputs}


class _Graph:
    """Nodes and constants appended to a graph, named pp_*."""

    def __init__(self, graph):
        self.g, self.nodes = graph, []

    def const(self, name: str, value) -> str:
        self.g.initializer.append(numpy_helper.from_array(np.asarray(value), f"pp_{name}"))
        return f"pp_{name}"

    @staticmethod
    def _name(output: str) -> str:
        return output if output in _FORM_NAMES else f"pp_{output}"

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
        "score_thr": np.array([score_threshold], np.float32),
        "sel_cols": np.array([0, 2], np.int64),
        "split2": np.array([2, 2], np.int64),
        "zero_i": np.array([0], np.int64),
        "two_i": np.array([2], np.int64),
        "class_range": np.arange(num_classes, dtype=np.int64).reshape(1, num_classes, 1),
        "rank": np.arange(d, dtype=np.int64).reshape(1, d),
        "xyxy_scale": np.array([1 / w, 1 / h, 1 / w, 1 / h], np.float32),
        "rows7": np.array([-1, 7], np.int64),
        "ssd_dims": np.array([1, 1, -1, 7], np.int64),
        "zero_s": np.array(0, np.int64),
        "one_s": np.array(1, np.int64),
    }
    return {name: pg.const(name, v) for name, v in values.items()}


def _runtime_inputs(pg: _Graph, num_classes: int, d: int, iou_threshold: float, runtime: bool) -> dict:
    """The NMS options' tensors: graph inputs with defaults (runtime) or plain constants."""
    defaults = {
        "iou_threshold": np.array([iou_threshold], np.float32),
        "max_det": np.array([d], np.int64),
        "classes": np.ones(num_classes, np.float32),
    }
    out = {}
    for option, value in defaults.items():
        if not runtime:
            out[option] = None if option == "classes" else pg.const(option, value)  # all classes: no mask
            continue
        name = RUNTIME_INPUTS[option]
        pg.g.initializer.append(numpy_helper.from_array(value, name))
        pg.g.input.append(
            helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape))
        )
        out[option] = name
    return out


def _candidates(pg: _Graph, logits: str, class_mask: str | None) -> tuple[str, str, str]:
    """Top-K over anchor x class logits: (scores (B, K), anchor index (B, K), class (B, K)). Candidates of classes
    the class mask drops score 0 (under the NMS score threshold): the mask costs K products, not a pass over the
    logits; like the host post-processing, it filters the best K candidates."""
    c = pg.c
    flat = pg.add("Reshape", [logits, c["flat_shape"]], "flat")  # (B, A*C)
    top_logits, top_idx = pg.add_multi("TopK", [flat, c["k"]], ["top_logits", "top_idx"], axis=1)
    anchor_idx = pg.add("Div", [top_idx, c["nc"]], "anchor_idx")
    base = pg.add("Mul", [anchor_idx, c["nc"]], "cls_base")  # idx % C without Mod
    cls = pg.add("Sub", [top_idx, base], "cls")
    scores = pg.add("Sigmoid", [top_logits], "scores_k")
    if class_mask is not None:  # a graph input (the edgedet form); consumer forms keep every class
        keep = pg.add("Gather", [class_mask, cls], "class_keep", axis=0)
        scores = pg.add("Mul", [scores, keep], "scores_masked")
    return scores, anchor_idx, cls


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


def _per_class_nms(pg: _Graph, boxes: str, scores: str, cls: str, iou: str) -> str:
    """NonMaxSuppression per class: scores (B, C, K) hold each candidate's score in its own class row and 0
    elsewhere (below the score threshold, so ignored). Returns a (B, K) 0/1 float mask of kept candidates."""
    c = pg.c
    is_cls = pg.add("Equal", [c["class_range"], pg.add("Unsqueeze", [cls, c["one_dim"]], "cls_b1k")], "is_cls")
    scores_b1k = pg.add("Unsqueeze", [scores, c["one_dim"]], "scores_b1k")
    nms_scores = pg.add("Where", [is_cls, scores_b1k, c["zero_f"]], "nms_scores")  # (B, C, K)
    selected = pg.add(
        "NonMaxSuppression", [boxes, nms_scores, c["max_out"], iou, c["score_thr"]], "selected", center_point_box=0
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


class _Top:
    """The best D kept candidates of each image: valid (B, D) bool, count (B,) float, scores, classes (int64),
    xyxy boxes (B, D, 4) in input pixels (unmasked: each form pads in its own way)."""

    def __init__(self, valid, num_f, scores, cls, xyxy):
        self.valid, self.num_f, self.scores, self.cls, self.xyxy = valid, num_f, scores, cls, xyxy


def _top(pg: _Graph, keep: str, scores: str, cls: str, yxyx: str, max_det: str) -> _Top:
    """The best D kept candidates by score; max_det (at most D) caps how many of them are valid."""
    c = pg.c
    masked = pg.add("Where", [pg.add("Greater", [keep, c["zero_f"]], "keep_b"), scores, c["neg"]], "masked")
    top_scores, top_pos = pg.add_multi("TopK", [masked, c["d"]], ["top_scores", "top_pos"], axis=1)  # (B, D)
    kept = pg.add("Greater", [top_scores, c["zero_f"]], "kept")
    valid = pg.add("And", [kept, pg.add("Less", [c["rank"], max_det], "under_max")], "valid")
    valid_f = pg.add("Cast", [valid], "valid_f", to=TensorProto.FLOAT)  # kept, at most max_det (all classes)
    num_f = pg.add("ReduceSum", [valid_f, c["one_dim"]], "num_f", keepdims=0)
    top_cls = pg.add("GatherElements", [cls, top_pos], "top_cls", axis=1)
    top_yxyx = pg.add("GatherElements", [yxyx, pg.expand4(top_pos, "pos")], "top_yxyx", axis=1)
    top_xyxy = pg.add("Gather", [top_yxyx, c["xyxy_order"]], "top_xyxy", axis=2)
    return _Top(valid, num_f, top_scores, top_cls, top_xyxy)


def _masked(pg: _Graph, t: _Top, name: str, cls_pad: str, names: tuple[str, ...]) -> tuple[str, str, str, str]:
    """(valid3, boxes, scores, classes) with invalid rows zeroed and classes padded with cls_pad."""
    c = pg.c
    valid3 = pg.add("Unsqueeze", [t.valid, c["ax_last"]], f"{name}_valid3")
    boxes = pg.add("Where", [valid3, t.xyxy, c["zero_f"]], names[0])
    scores = pg.add("Where", [t.valid, t.scores, c["zero_f"]], names[1])
    classes = pg.add("Where", [t.valid, t.cls, cls_pad], names[2])
    return valid3, boxes, scores, classes


def _write_edgedet(pg: _Graph, t: _Top, bdim, d: int, num_classes: int) -> list:
    pg.add("Cast", [t.num_f], "num_detections", to=TensorProto.INT64)
    _masked(pg, t, "edgedet", pg.c["minus1"], ("boxes", "scores", "classes"))
    return [
        helper.make_tensor_value_info("num_detections", TensorProto.INT64, [bdim]),
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [bdim, d, 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, [bdim, d]),
        helper.make_tensor_value_info("classes", TensorProto.INT64, [bdim, d]),
    ]


def _write_efficientnms(pg: _Graph, t: _Top, bdim, d: int, num_classes: int) -> list:
    c = pg.c
    num = pg.add("Unsqueeze", [t.num_f, c["one_dim"]], "num_b1")
    pg.add("Cast", [num], "num_detections", to=TensorProto.INT32)
    _, _, _, cls = _masked(pg, t, "enms", c["zero_i"], ("detection_boxes", "detection_scores", "classes64"))
    pg.add("Cast", [cls], "detection_classes", to=TensorProto.INT32)
    return [
        helper.make_tensor_value_info("num_detections", TensorProto.INT32, [bdim, 1]),
        helper.make_tensor_value_info("detection_boxes", TensorProto.FLOAT, [bdim, d, 4]),
        helper.make_tensor_value_info("detection_scores", TensorProto.FLOAT, [bdim, d]),
        helper.make_tensor_value_info("detection_classes", TensorProto.INT32, [bdim, d]),
    ]


def _rows7(pg: _Graph, t: _Top, prefix: str, columns: list) -> str:
    """(B, D, 7) float rows from (B, D) columns and the (B, D, 4) box block, in the order given."""
    c = pg.c
    parts = [
        pg.add("Unsqueeze", [col, c["ax_last"]], f"{prefix}_col{i}") if isinstance(col, str) else col[0]
        for i, col in enumerate(columns)
    ]
    return pg.add("Concat", parts, f"{prefix}_rows", axis=2)


def _batch_index(pg: _Graph, t: _Top, prefix: str) -> str:
    """(B, 1) float: each image's index in the batch."""
    c = pg.c
    b = pg.add("Gather", [pg.add("Shape", [t.scores], f"{prefix}_shape"), c["zero_s"]], f"{prefix}_b", axis=0)
    idx = pg.add("Range", [c["zero_s"], b, c["one_s"]], f"{prefix}_range")
    idx_f = pg.add("Cast", [idx], f"{prefix}_range_f", to=TensorProto.FLOAT)
    return pg.add("Unsqueeze", [idx_f, c["ax_last"]], f"{prefix}_bidx")


def _write_ssd(pg: _Graph, t: _Top, bdim, d: int, num_classes: int) -> list:
    c = pg.c
    valid3, boxes, scores, cls = _masked(pg, t, "ssd", c["zero_i"], ("ssd_boxes", "ssd_scores", "ssd_cls"))
    image = pg.add("Where", [t.valid, _batch_index(pg, t, "ssd"), c["neg"]], "ssd_image")
    label = pg.add("Cast", [cls], "ssd_label", to=TensorProto.FLOAT)
    norm = pg.add("Mul", [boxes, c["xyxy_scale"]], "ssd_norm")
    rows = _rows7(pg, t, "ssd", [image, label, scores, (norm,)])
    pg.add("Reshape", [rows, c["ssd_dims"]], "detection_out")
    n = bdim * d if isinstance(bdim, int) else None
    return [helper.make_tensor_value_info("detection_out", TensorProto.FLOAT, [1, 1, n, 7])]


def _write_yolonas(pg: _Graph, t: _Top, bdim, d: int, num_classes: int) -> list:
    c = pg.c
    valid3, boxes, scores, cls = _masked(pg, t, "yn", c["minus1"], ("yn_boxes", "yn_scores", "yn_cls"))
    batch = pg.add("Add", [_batch_index(pg, t, "yn"), pg.add("Mul", [scores, c["zero_f"]], "yn_zero")], "yn_batch")
    label = pg.add("Cast", [cls], "yn_label", to=TensorProto.FLOAT)
    rows = _rows7(pg, t, "yn", [batch, (boxes,), scores, label])
    pg.add("Reshape", [rows, c["rows7"]], "detections")
    n = bdim * d if isinstance(bdim, int) else None
    return [helper.make_tensor_value_info("detections", TensorProto.FLOAT, [n, 7])]


# output form name (edgedet.postprocess.OUTPUT_FORMS) -> the function that writes it
FORM_WRITERS = {
    "edgedet": _write_edgedet,
    "efficientnms": _write_efficientnms,
    "ssd": _write_ssd,
    "yolonas": _write_yolonas,
}


def append_postprocess(
    model: onnx.ModelProto,
    anchors: np.ndarray,
    image_hw: tuple[int, int],
    num_classes: int,
    score_threshold: float,
    iou_threshold: float = 0.5,
    max_candidates: int = 1000,
    max_det: int = 100,
    form: str = "edgedet",
) -> onnx.ModelProto:
    """Post-processing in the output form `form`; the edgedet form takes the run-time NMS options as inputs."""
    g = model.graph
    k = int(min(max_candidates, anchors.shape[0] * num_classes, TRT_TOPK_LIMIT))
    d = int(min(max_det, k))
    pg = _Graph(g)
    pg.c = _constants(pg, anchors, image_hw, num_classes, k, d, iou_threshold, score_threshold)
    nms = _runtime_inputs(pg, num_classes, d, iou_threshold, OUTPUT_FORMS[form].runtime_inputs)
    logits, deltas = HOST_OUTPUTS
    scores, anchor_idx, cls = _candidates(pg, logits, nms["classes"])
    yxyx = _decode(pg, deltas, anchor_idx)
    keep = _per_class_nms(pg, yxyx, scores, cls, nms["iou_threshold"])
    top = _top(pg, keep, scores, cls, yxyx, nms["max_det"])
    bdim = g.output[0].type.tensor_type.shape.dim[0]
    bdim = bdim.dim_param or bdim.dim_value
    outputs = FORM_WRITERS[form](pg, top, bdim, d, num_classes)
    g.node.extend(pg.nodes)
    del g.output[:]
    g.output.extend(outputs)
    used = {i for n in g.node for i in n.input}
    unused = [t for t in g.initializer if t.name.startswith("pp_") and t.name not in used]  # other forms' constants
    for t in unused:
        g.initializer.remove(t)
    return model


def runtime_inputs(form: str) -> dict:
    """The manifest's postprocess.runtime_inputs of an in-graph artifact in this form."""
    return dict(RUNTIME_INPUTS) if OUTPUT_FORMS[form].runtime_inputs else {}
