"""BiFPN with fast normalized fusion; module names follow effdet so checkpoints load strictly."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..anchors import feature_sizes
from ..configs import ModelConfig
from .layers import ConvBnAct, SeparableConv, make_act, same_max_pool


def bifpn_nodes(min_level: int, max_level: int) -> list[tuple[int, list[int]]]:
    """(level, input node offsets) for one BiFPN layer: top-down path then bottom-up path."""
    ids = {lvl: [i] for i, lvl in enumerate(range(min_level, max_level + 1))}
    nxt = max_level - min_level + 1
    nodes = []
    for lvl in range(max_level - 1, min_level - 1, -1):
        nodes.append((lvl, [ids[lvl][-1], ids[lvl + 1][-1]]))
        ids[lvl].append(nxt)
        nxt += 1
    for lvl in range(min_level + 1, max_level + 1):
        nodes.append((lvl, ids[lvl] + [ids[lvl - 1][-1]]))
        ids[lvl].append(nxt)
        nxt += 1
    return nodes


class Resample(nn.Sequential):
    """1x1 conv+BN when channels differ, then max-pool down or nearest up to the target size."""

    def __init__(self, cin: int, cout: int, in_hw, out_hw):
        super().__init__()
        if cin != cout:
            self.add_module("conv", ConvBnAct(cin, cout, 1, bias=True, bn=True))
        if in_hw[0] > out_hw[0] and in_hw[1] > out_hw[1]:
            stride = (in_hw[0] - 1) // out_hw[0] + 1
            self.add_module("downsample", same_max_pool(stride + 1, stride, in_hw))
        elif in_hw[0] < out_hw[0] or in_hw[1] < out_hw[1]:
            self.add_module("upsample", Upsample(in_hw, out_hw))


class Upsample(nn.Module):
    def __init__(self, in_hw, out_hw):
        super().__init__()
        exact = out_hw[0] % in_hw[0] == 0 and out_hw[1] % in_hw[1] == 0
        self.scale = (float(out_hw[0] // in_hw[0]), float(out_hw[1] // in_hw[1])) if exact else None
        self.size = None if exact else tuple(out_hw)

    def forward(self, x):
        return F.interpolate(x, size=self.size, scale_factor=self.scale, mode="nearest")


class Combine(nn.Module):
    def __init__(self, infos, channels: int, offsets: list[int], out_hw, fusion: str):
        super().__init__()
        self.offsets = list(offsets)
        self.resample = nn.ModuleDict({str(o): Resample(infos[o][0], channels, infos[o][1], out_hw) for o in offsets})
        self.fusion = fusion
        self.edge_weights = nn.Parameter(torch.ones(len(offsets))) if fusion == "fastattn" else None

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        nodes = [self.resample[str(o)](x[o]) for o in self.offsets]
        if self.edge_weights is None:
            return _sum(nodes)
        w = F.relu(self.edge_weights.to(nodes[0].dtype))
        w = w / (w.sum() + 1e-4)
        out = nodes[0] * w[0]
        for i in range(1, len(nodes)):
            out = out + nodes[i] * w[i]
        return out


def _sum(nodes):
    out = nodes[0]
    for n in nodes[1:]:
        out = out + n
    return out


class Fnode(nn.Module):
    def __init__(self, combine: Combine, channels: int, act: str):
        super().__init__()
        self.combine = combine
        self.after_combine = nn.Sequential()
        self.after_combine.add_module("act", make_act(act))
        self.after_combine.add_module("conv", SeparableConv(channels, channels, bias=True, bn=True))

    def forward(self, x):
        return self.after_combine(self.combine(x))


class BiFpnLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, infos: list[tuple[int, tuple[int, int]]], sizes):
        super().__init__()
        self.num_levels = cfg.num_levels
        infos = list(infos)
        self.fnode = nn.ModuleList()
        for level, offsets in bifpn_nodes(cfg.min_level, cfg.max_level):
            combine = Combine(infos, cfg.fpn_channels, offsets, sizes[level], cfg.fusion)
            self.fnode.append(Fnode(combine, cfg.fpn_channels, cfg.act))
            infos.append((cfg.fpn_channels, sizes[level]))
        self.out_infos = infos[-self.num_levels :]

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        x = list(x)
        for fn in self.fnode:
            x.append(fn(x))
        return x[-self.num_levels :]


class BiFpn(nn.Module):
    def __init__(self, cfg: ModelConfig, backbone_channels: list[int]):
        super().__init__()
        sizes = feature_sizes(cfg.image_size, cfg.max_level)
        infos = [(c, sizes[cfg.min_level + i]) for i, c in enumerate(backbone_channels)]
        self.resample = nn.ModuleDict()
        for level in range(len(backbone_channels), cfg.num_levels):
            cin, in_hw = infos[-1]
            out_hw = sizes[cfg.min_level + level]
            self.resample[str(level)] = Resample(cin, cfg.fpn_channels, in_hw, out_hw)
            infos.append((cfg.fpn_channels, out_hw))
        self.cell = nn.Sequential()
        for r in range(cfg.fpn_repeats):
            layer = BiFpnLayer(cfg, infos, sizes)
            self.cell.add_module(str(r), layer)
            infos = layer.out_infos

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        x = list(feats)
        for resample in self.resample.values():
            x.append(resample(x[-1]))
        for layer in self.cell:
            x = layer(x)
        return x
