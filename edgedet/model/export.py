"""Export wrapper: raw per-level heads -> flat (B, A, C) logits and (B, A, 4) box deltas (anchor order)."""

from __future__ import annotations

import torch
import torch.nn as nn


class FlatHeads(nn.Module):
    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.model = model
        self.num_classes = model.config.num_classes
        self.dtype = dtype

    def forward(self, images: torch.Tensor):
        x = images.to(self.dtype)
        cls, box = self.model(x)
        logits = torch.cat([_flat(t, self.num_classes) for t in cls], dim=1)
        deltas = torch.cat([_flat(t, 4) for t in box], dim=1)
        return logits.float(), deltas.float()


def _flat(t: torch.Tensor, last: int) -> torch.Tensor:
    return t.permute(0, 2, 3, 1).reshape(t.shape[0], -1, last)
