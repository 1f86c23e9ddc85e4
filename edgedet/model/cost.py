"""Parameter and multiply-add counts of a model, computed on the meta device (no weights, no compute).

GMACs counts the multiply-adds of every convolution and linear layer (the paper's "FLOPs" in Table 2
are multiply-adds); GFLOPs = 2 x GMACs. Element-wise ops (BN, activations, fusion, pooling) are not
counted, as in the paper.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from edgedet.configs import ModelConfig
from edgedet.manifest import CostSection


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    total = 0

    def conv_hook(m: nn.Conv2d, _inp, out):
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total += out.numel() * k

    def linear_hook(m: nn.Linear, _inp, out):
        nonlocal total
        total += out.numel() * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return total


def model_cost(cfg: ModelConfig, batch: int = 1) -> CostSection:
    """Params and MACs per image of the model described by cfg, at cfg.image_size."""
    from edgedet.model import EfficientDet

    with torch.device("meta"):
        model = EfficientDet(cfg).eval()
        x = torch.empty(batch, 3, *cfg.image_size)
    params = sum(p.numel() for p in model.parameters())
    return CostSection(params=params, macs=count_macs(model, x) // batch)
