"""Anchor labelling as in EfficientDet/RetinaNet: IoU >= 0.5 positive, below negative, and every ground-truth
box force-matched to its best anchor. Box targets (ty, tx, th, tw) relative to the anchor (no scaling)."""

from __future__ import annotations

import numpy as np
import torch


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of xyxy boxes, (A, 4) x (G, 4) -> (A, G)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


class AnchorMatcher:
    def __init__(self, anchors_yxyx: np.ndarray, threshold: float = 0.5):
        a = torch.from_numpy(anchors_yxyx).float()
        self.anchors = a[:, [1, 0, 3, 2]]  # xyxy
        self.threshold = threshold

    def __call__(self, boxes: torch.Tensor, labels: torch.Tensor):
        """boxes (G, 4) xyxy in network pixels, labels (G,) -> cls (A,) long (-1 background), box (A, 4)."""
        num = self.anchors.shape[0]
        cls = torch.full((num,), -1, dtype=torch.long)
        box = torch.zeros((num, 4))
        if boxes.numel() == 0:
            return cls, box
        iou = box_iou(self.anchors, boxes)
        best_iou, best_gt = iou.max(dim=1)
        pos = best_iou >= self.threshold
        forced = iou.argmax(dim=0)  # best anchor of every gt box
        best_gt[forced] = torch.arange(boxes.shape[0])
        pos[forced] = True
        cls[pos] = labels[best_gt[pos]]
        box[pos] = encode(boxes[best_gt[pos]], self.anchors[pos])
        return cls, box


def encode(gt_xyxy: torch.Tensor, anchors_xyxy: torch.Tensor) -> torch.Tensor:
    ha = anchors_xyxy[:, 3] - anchors_xyxy[:, 1]
    wa = anchors_xyxy[:, 2] - anchors_xyxy[:, 0]
    yca = (anchors_xyxy[:, 1] + anchors_xyxy[:, 3]) / 2
    xca = (anchors_xyxy[:, 0] + anchors_xyxy[:, 2]) / 2
    h = (gt_xyxy[:, 3] - gt_xyxy[:, 1]).clamp(min=1e-3)
    w = (gt_xyxy[:, 2] - gt_xyxy[:, 0]).clamp(min=1e-3)
    yc = (gt_xyxy[:, 1] + gt_xyxy[:, 3]) / 2
    xc = (gt_xyxy[:, 0] + gt_xyxy[:, 2]) / 2
    return torch.stack([(yc - yca) / ha, (xc - xca) / wa, torch.log(h / ha), torch.log(w / wa)], dim=1)
