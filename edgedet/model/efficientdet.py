"""EfficientDet: timm EfficientNet backbone + our BiFPN and class/box heads (effdet key layout)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..configs import ModelConfig
from .backbone import create_backbone
from .bifpn import BiFpn
from .layers import ConvBnAct, SeparableConv, bn, make_act


class HeadNet(nn.Module):
    """Shared separable convs with per-level BN (bn_rep[repeat][level]), then the predict conv."""

    def __init__(self, cfg: ModelConfig, num_outputs: int):
        super().__init__()
        ch, reps = cfg.fpn_channels, cfg.head_repeats
        self.num_levels = cfg.num_levels
        self.conv_rep = nn.ModuleList([SeparableConv(ch, ch, bias=True, bn=False) for _ in range(reps)])
        self.bn_rep = nn.ModuleList(
            [nn.ModuleList([nn.Sequential() for _ in range(cfg.num_levels)]) for _ in range(reps)]
        )
        for rep in self.bn_rep:
            for seq in rep:
                seq.add_module("bn", bn(ch))
        self.act = make_act(cfg.act)
        self.predict = SeparableConv(ch, num_outputs * cfg.num_anchors, bias=True, bn=False)

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        outs = []
        for level in range(self.num_levels):
            y = x[level]
            for conv, bns in zip(self.conv_rep, self.bn_rep):
                y = self.act(bns[level](conv(y)))
            outs.append(self.predict(y))
        return outs


class EfficientDet(nn.Module):
    """forward(images NCHW float) -> (class_outputs, box_outputs): lists per level, NCHW, like effdet."""

    def __init__(self, cfg: ModelConfig, pretrained_backbone: bool = False):
        super().__init__()
        cfg.validate()
        self.config = cfg
        self.backbone = create_backbone(cfg, pretrained=pretrained_backbone)
        self.fpn = BiFpn(cfg, self.backbone.feature_info.channels())
        self.class_net = HeadNet(cfg, cfg.num_classes)
        self.box_net = HeadNet(cfg, 4)
        for name, module in self.named_modules():
            if not name.startswith("backbone"):
                init_weights(name, module)

    def reset_class_head(self, num_classes: int) -> None:
        self.config = self.config.replace(num_classes=num_classes)
        device = next(self.parameters()).device
        self.class_net = HeadNet(self.config, num_classes).to(device)
        for name, module in self.class_net.named_modules(prefix="class_net"):
            init_weights(name, module)

    def forward(self, images: torch.Tensor):
        feats = self.fpn(self.backbone(images))
        return self.class_net(feats), self.box_net(feats)


def init_weights(name: str, m: nn.Module) -> None:
    """TF EfficientDet init: Glorot-uniform in the BiFPN, variance scaling in heads, focal prior bias."""
    head = "box_net" in name or "class_net" in name
    prior_bias = -math.log((1 - 0.01) / 0.01)
    if isinstance(m, SeparableConv):
        for conv in (m.conv_dw, m.conv_pw):
            (_variance_scaling if head else _glorot_uniform)(conv.weight, conv.groups)
        if m.conv_pw.bias is not None:
            nn.init.constant_(m.conv_pw.bias, prior_bias if "class_net.predict" in name else 0.0)
    elif isinstance(m, ConvBnAct):
        _glorot_uniform(m.conv.weight, m.conv.groups)
        if m.conv.bias is not None:
            nn.init.zeros_(m.conv.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def _fans(w: torch.Tensor, groups: int) -> tuple[int, int]:
    rf = w[0][0].numel()
    return w.size(1) * rf, w.size(0) * rf // groups


@torch.no_grad()
def _glorot_uniform(w: torch.Tensor, groups: int = 1) -> None:
    fan_in, fan_out = _fans(w, groups)
    limit = math.sqrt(3.0 / max(1.0, (fan_in + fan_out) / 2.0))
    w.uniform_(-limit, limit)


@torch.no_grad()
def _variance_scaling(w: torch.Tensor, groups: int = 1) -> None:
    fan_in, _ = _fans(w, groups)
    w.normal_(std=math.sqrt(1.0 / max(1.0, fan_in)))
