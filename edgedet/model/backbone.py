"""timm EfficientNet backbones (features_only, strides 8/16/32) with TF 'SAME' padding frozen statically."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..configs import ModelConfig
from ..errors import BackendUnavailableError
from .layers import StaticSameConv2d, same_max_pool


def _timm():
    try:
        import timm
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise BackendUnavailableError("torch", "export", e) from e
    return timm


def _build(cfg: ModelConfig, pretrained: bool) -> nn.Module:
    drop_path = 0.0 if cfg.name == "lite0" else 0.2  # as effdet; only active while training
    return _timm().create_model(
        cfg.backbone, features_only=True, out_indices=(2, 3, 4), pretrained=pretrained, drop_path_rate=drop_path
    )


def create_backbone(cfg: ModelConfig, pretrained: bool = False) -> nn.Module:
    backbone = _build(cfg, pretrained)
    freeze_same_padding(backbone, cfg, _dynamic_input_sizes(cfg))
    return backbone


def _is_dynamic_same(m: nn.Module) -> bool:
    return type(m).__name__ in ("Conv2dSame", "Conv2dSameExport", "MaxPool2dSame")


def _dynamic_input_sizes(cfg: ModelConfig) -> dict[str, tuple[int, int]]:
    """Input H, W of every dynamically padded layer, found by a forward pass on the meta device (free)."""
    with torch.device("meta"):
        twin = _build(cfg, pretrained=False)
    sizes: dict[str, tuple[int, int]] = {}
    hooks = [
        m.register_forward_pre_hook(lambda mod, args, n=n: sizes.__setitem__(n, tuple(args[0].shape[-2:])))
        for n, m in twin.named_modules()
        if _is_dynamic_same(m)
    ]
    with torch.no_grad():
        twin(torch.empty(1, 3, *cfg.image_size, device="meta"))
    for h in hooks:
        h.remove()
    return sizes


def freeze_same_padding(backbone: nn.Module, cfg: ModelConfig, sizes: dict[str, tuple[int, int]]) -> None:
    for name, size in sizes.items():
        parent_name, _, child = name.rpartition(".")
        parent = backbone.get_submodule(parent_name) if parent_name else backbone
        old = getattr(parent, child)
        if isinstance(old, nn.Conv2d):
            new = StaticSameConv2d.from_conv(old, size)
        else:
            k, s = old.kernel_size, old.stride
            new = same_max_pool(k if isinstance(k, int) else k[0], s if isinstance(s, int) else s[0], size)
        setattr(parent, child, new)
