"""Numpy post-processing: top-k candidates, box decode, per-class NMS, at most max_det detections; and the
reading of every in-graph output form (OUTPUT_FORMS: edgedet's own, efficientnms, ssd, yolonas)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .detections import Detections
from .errors import ArtifactError


def decode_boxes(deltas: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """(ty, tx, th, tw) relative to [y1, x1, y2, x2] anchors -> [x1, y1, x2, y2]."""
    size = anchors[:, 2:] - anchors[:, :2]  # (ha, wa)
    centre = deltas[:, :2] * size + (anchors[:, :2] + anchors[:, 2:]) * 0.5  # (yc, xc)
    half = np.exp(deltas[:, 2:]) * size / 2  # (h / 2, w / 2)
    return np.concatenate([(centre - half)[:, ::-1], (centre + half)[:, ::-1]], axis=1).astype(np.float32)


def clip_boxes(boxes: np.ndarray, h: float, w: float) -> np.ndarray:
    """Clip float32 xyxy boxes to [0, w] x [0, h] in place (two ufuncs: no np.clip wrapper on the hot path)."""
    np.minimum(boxes, np.array([w, h, w, h], np.float32), out=boxes)
    return np.maximum(boxes, np.float32(0.0), out=boxes)


# Up to this many candidates, NMS computes every pairwise IoU at once (256 x 256 floats, well inside L2) and keeps
# boxes with one boolean OR each; above it, one row of IoUs per kept box. Same arithmetic, same result.
DENSE_NMS_MAX = 256


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int) -> np.ndarray:
    """Greedy NMS; boxes xyxy, returns kept indices in descending score order (ties: lower index first).
    Zero-area boxes have a NaN IoU, which never suppresses, as in torchvision."""
    order = np.argsort(-scores, kind="stable")
    ranked = boxes[order]
    with np.errstate(invalid="ignore", divide="ignore"):
        if order.size <= DENSE_NMS_MAX:
            keep = _greedy_dense(_iou(ranked[:, None], ranked[None]) > iou_threshold, max_keep)
        else:
            keep = _greedy_rows(ranked, iou_threshold, max_keep)
    return order[np.asarray(keep, dtype=np.int64)]


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes a and b, broadcast over their leading axes."""
    w = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0)
    h = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0)
    inter = w * h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / (area_a + area_b - inter)


def _greedy_dense(over: np.ndarray, max_keep: int) -> list[int]:
    """over[i, j]: box i suppresses box j (boxes ranked best first)."""
    removed = np.zeros(over.shape[0], bool)
    keep: list[int] = []
    for i in range(over.shape[0]):
        if len(keep) >= max_keep:
            break
        if not removed[i]:
            keep.append(i)
            removed |= over[i]
    return keep


def _greedy_rows(ranked: np.ndarray, iou_threshold: float, max_keep: int) -> list[int]:
    keep: list[int] = []
    rest = np.arange(ranked.shape[0])
    while rest.size and len(keep) < max_keep:
        i, rest = rest[0], rest[1:]
        keep.append(int(i))
        rest = rest[~(_iou(ranked[i], ranked[rest]) > iou_threshold)]
    return keep


def batched_nms(boxes, scores, classes, iou_threshold: float, max_keep: int, class_offset: float | None = None):
    """Per-class NMS by offsetting each class into its own coordinate range (as torchvision).

    class_offset: the per-class shift; None uses boxes.max() + 1 like torchvision. Boxes clipped to a
    known extent use the fixed extent + 1, which the in-graph NMS uses too (identical arithmetic)."""
    if boxes.size == 0:
        return np.zeros((0,), np.int64)
    step = np.float32(boxes.max() + 1 if class_offset is None else class_offset)
    offset = classes.astype(np.float32)[:, None] * step
    return nms(boxes + offset, scores, iou_threshold, max_keep)


def postprocess(
    logits: np.ndarray,
    deltas: np.ndarray,
    anchors: np.ndarray,
    score_threshold: float = 0.0,
    iou_threshold: float = 0.5,
    max_candidates: int = 1000,
    max_det: int = 100,
    clip_hw: tuple[int, int] | None = None,
    classes: np.ndarray | None = None,
):
    """One image: logits (A, C) raw class logits, deltas (A, 4). Returns xyxy (N,4), scores (N,), classes (N,)
    in network-input pixels, best first. Top-k over all anchor x class logits, like effdet/AutoML.
    clip_hw: clip decoded boxes to [0, W] x [0, H] before NMS (what the in-graph NMS does); None keeps
    them unclipped (effdet's DetBenchPredict without img_info).
    classes: the class indices to keep, or None for all: the best max_candidates candidates of other classes are
    dropped before NMS (what the in-graph class mask does)."""
    num_classes = logits.shape[1]
    flat = logits.reshape(-1)
    if score_threshold > 0:
        cand = np.flatnonzero(flat > _logit(score_threshold))
    else:
        cand = np.arange(flat.size)
    if cand.size > max_candidates:
        part = np.argpartition(-flat[cand], max_candidates - 1)[:max_candidates]
        cand = cand[part]
    if classes is not None:
        cand = cand[np.isin(cand % num_classes, classes)]
    cand = cand[np.argsort(-flat[cand], kind="stable")]
    anchor_idx, cls = cand // num_classes, cand % num_classes
    scores = 1.0 / (1.0 + np.exp(-flat[cand].astype(np.float32)))
    boxes = decode_boxes(deltas[anchor_idx].astype(np.float32), anchors[anchor_idx])
    offset = None
    if clip_hw is not None:
        h, w = clip_hw
        clip_boxes(boxes, h, w)
        offset = float(max(h, w) + 1)
    keep = batched_nms(boxes, scores, cls, iou_threshold, max_det, offset)
    return boxes[keep], scores[keep].astype(np.float32), cls[keep].astype(np.int64)


def _logit(p: float) -> float:
    p = min(max(p, 1e-7), 1 - 1e-7)
    return math.log(p / (1 - p))


# ---------------------------------------------------------------------------------------------- output forms
def _read_counted(outputs: dict, names, i: int, hw):
    """A count and fixed-size boxes (xyxy, input pixels), scores and classes: the rows past the count are padding."""
    num, boxes, scores, classes = (outputs[n] for n in names)
    n = int(np.ravel(num[i])[0])  # (B,), or (B, 1): EfficientNMS, Triton's dims [1]
    return boxes[i, :n], scores[i, :n], classes[i, :n]


def _read_ssd(outputs: dict, names, i: int, hw):
    """[1, 1, N, 7] rows of image id, label, confidence, x_min, y_min, x_max, y_max normalised to the input; rows of
    image id -1 are padding (OpenVINO's DetectionOutput convention)."""
    rows = np.asarray(outputs[names[0]]).reshape(-1, 7)
    rows = rows[rows[:, 0] == i]
    h, w = hw
    return rows[:, 3:7] * np.array([w, h, w, h], np.float32), rows[:, 2], rows[:, 1]


def _read_yolonas(outputs: dict, names, i: int, hw):
    """[N, 7] rows of batch index, x_min, y_min, x_max, y_max (input pixels), confidence, class; class -1 is padding
    (YOLO-NAS' flat format, which Frigate's yolonas model type reads)."""
    rows = np.asarray(outputs[names[0]]).reshape(-1, 7)
    rows = rows[(rows[:, 0] == i) & (rows[:, 6] >= 0)]
    return rows[:, 1:5], rows[:, 5], rows[:, 6]


@dataclass(frozen=True)
class OutputForm:
    """An in-graph output layout: its tensor names (the graph's output order) and how to read one image of it
    (-> boxes xyxy in input pixels, scores, classes, best first). converters/onnx_postprocess.py writes each form."""

    name: str
    outputs: tuple[str, ...]
    read: Callable
    runtime_inputs: bool  # takes the run-time NMS options as graph inputs (consumer forms have one input only)
    description: str


OUTPUT_FORMS = {
    f.name: f
    for f in (
        OutputForm(
            "edgedet",
            ("num_detections", "boxes", "scores", "classes"),
            _read_counted,
            True,
            "num_detections int64 (B,), boxes (B,D,4) xyxy pixels, scores (B,D), classes int64 (B,D), -1 padding",
        ),
        OutputForm(
            "efficientnms",
            ("num_detections", "detection_boxes", "detection_scores", "detection_classes"),
            _read_counted,
            False,
            "TensorRT EfficientNMS_TRT layout read by DeepStream's NvDsInferParseCustomEfficientNMS: "
            "num_detections int32 (B,1), detection_boxes (B,D,4) xyxy pixels, detection_scores (B,D), "
            "detection_classes int32 (B,D), zero padding",
        ),
        OutputForm(
            "ssd",
            ("detection_out",),
            _read_ssd,
            False,
            "one [1,1,B*D,7] tensor: image id, label, confidence, normalised x_min, y_min, x_max, y_max "
            "(OpenVINO DetectionOutput; model_api's SSD wrapper, Frigate's ssd model type)",
        ),
        OutputForm(
            "yolonas",
            ("detections",),
            _read_yolonas,
            False,
            "one [B*D,7] tensor: batch index, x_min, y_min, x_max, y_max (pixels), confidence, class (-1 padding); "
            "Frigate's yolonas model type (its ONNX detector reads no ssd)",
        ),
    )
}


def output_form(name: str, where: str = "manifest") -> OutputForm:
    """The output form of a manifest's `postprocess.output_form`; an ArtifactError for one this edgedet does not
    know (an artifact written by a newer edgedet, or an edited manifest)."""
    if name not in OUTPUT_FORMS:
        raise ArtifactError(
            f"{where}: output form '{name}' is not one this edgedet reads ({', '.join(OUTPUT_FORMS)}): "
            "upgrade edgedet or re-export the artifact"
        )
    return OUTPUT_FORMS[name]


@dataclass(frozen=True)
class NmsOptions:
    """Run-time post-processing: IoU threshold, at most max_det detections per image, only these classes (sorted
    indices) or all (None). A field left None keeps the artifact's own value."""

    iou_threshold: float | None = None
    max_det: int | None = None
    classes: tuple[int, ...] | None = None

    def given(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None}


class Postprocessor:
    """Network outputs of one batch -> Detections in original-image pixels (un-letterboxed and clipped).

    The one post-processing of the project: the Detector (every backend) and training-time validation use it.
    Raw heads (`logits`, `deltas`) are decoded and NMS'd in numpy; in-graph outputs (any OUTPUT_FORMS row) are only
    read and thresholded. Output tensor names come from the manifest."""

    def __init__(
        self,
        model: dict,
        class_names,
        in_graph: bool,
        output_names,
        iou_threshold: float = 0.5,
        max_candidates: int = 1000,
        max_det: int = 100,
        form: str = "edgedet",
        classes=None,
    ):
        from .anchors import anchors_for

        self.image_size = tuple(int(s) for s in model["image_size"])
        self.class_names = list(class_names)
        self.in_graph = bool(in_graph)
        self.form = output_form(form) if self.in_graph else None
        self.names = list(output_names)
        self.iou_threshold, self.max_candidates, self.max_det = iou_threshold, max_candidates, max_det
        self.classes = None if classes is None else np.asarray(sorted(classes), np.int64)
        self.anchors = None if self.in_graph else anchors_for(model)

    @classmethod
    def from_manifest(cls, m, nms: NmsOptions | None = None) -> "Postprocessor":
        """The artifact's post-processing; with host NMS, `nms` replaces its IoU threshold, max_det and classes."""
        pp = m.postprocess
        opts = (nms or NmsOptions()).given() if not pp.in_graph else {}
        return cls(
            m.model,
            m.class_names,
            pp.in_graph,
            m.outputs,
            opts.get("iou_threshold", pp.iou_threshold),
            pp.max_candidates,
            opts.get("max_det", pp.max_det),
            pp.output_form,
            opts.get("classes"),
        )

    def raw(self, outputs: dict, i: int, thr: float):
        """Image i of the batch: boxes (network-input pixels), scores, classes."""
        if self.in_graph:
            boxes, scores, classes = self.form.read(outputs, self.names, i, self.image_size)
            keep = scores >= thr
            return boxes[keep], scores[keep], classes[keep].astype(np.int64)
        logits, deltas = (outputs[n] for n in self.names)
        return postprocess(
            logits[i],
            deltas[i],
            self.anchors,
            score_threshold=thr,
            iou_threshold=self.iou_threshold,
            max_candidates=self.max_candidates,
            max_det=self.max_det,
            clip_hw=self.image_size,
            classes=self.classes,
        )

    def __call__(self, outputs: dict, i: int, info, thr: float) -> Detections:
        boxes, scores, classes = self.raw(outputs, i, thr)
        h, w = info.orig_hw
        xyxy = clip_boxes(np.divide(boxes, np.float32(info.scale), dtype=np.float32), h, w)
        names = self.class_names
        labels = [names[c] if 0 <= c < len(names) else str(c) for c in classes.tolist()]
        return Detections(xyxy, scores, classes, labels)
