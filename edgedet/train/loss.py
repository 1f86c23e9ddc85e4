"""EfficientDet loss: sigmoid focal loss (alpha 0.25, gamma 1.5) + Huber box loss (delta 0.1, weight 50),
both normalised by the number of positive anchors."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def detection_loss(
    logits: torch.Tensor,
    deltas: torch.Tensor,
    cls_t: torch.Tensor,
    box_t: torch.Tensor,
    alpha: float = 0.25,
    gamma: float = 1.5,
    delta: float = 0.1,
    box_weight: float = 50.0,
):
    """logits (B, A, C), deltas (B, A, 4), cls_t (B, A) long with -1 background, box_t (B, A, 4)."""
    num_classes = logits.shape[-1]
    pos = cls_t >= 0
    num_pos = pos.sum().clamp(min=1).float()
    onehot = F.one_hot(cls_t.clamp(min=0), num_classes).float() * pos[..., None]
    logits = logits.float()
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
    p_t = onehot * p + (1 - onehot) * (1 - p)
    a_t = onehot * alpha + (1 - onehot) * (1 - alpha)
    cls_loss = (a_t * (1 - p_t) ** gamma * ce).sum() / num_pos
    box_loss = F.huber_loss(deltas.float()[pos], box_t[pos], delta=delta, reduction="sum") / (num_pos * 4)
    return cls_loss + box_weight * box_loss, cls_loss.detach(), box_loss.detach()
