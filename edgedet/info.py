"""Model facts for `edgedet info` (params and multiply-adds counted on the meta device)."""

from __future__ import annotations

import json
from pathlib import Path

from .configs import get_config

_PAPER = Path(__file__).with_name("paper_table2.json")


def paper_reference() -> dict:
    return json.loads(_PAPER.read_text())


def model_info(name: str, imgsz: int | None = None, num_classes: int | None = None) -> dict:
    from .model.cost import model_cost

    cfg = get_config(name, num_classes=num_classes, image_size=imgsz)
    cost = model_cost(cfg)
    row = {
        "model": cfg.name,
        "input_size": list(cfg.image_size),
        "backbone": cfg.backbone,
        "bifpn_width": cfg.fpn_channels,
        "bifpn_depth": cfg.fpn_repeats,
        "head_depth": cfg.head_repeats,
        "min_level": cfg.min_level,
        "max_level": cfg.max_level,
        "num_classes": cfg.num_classes,
        "anchor_scale": cfg.anchor_scale,
        "activation": cfg.act,
        "fusion": cfg.fusion,
        "params": cost.params,
        "macs": cost.macs,
        "gmacs": round(cost.gmacs, 4),
        "gflops": round(cost.gflops, 4),
        "flops_note": "gmacs = multiply-adds of conv/linear layers (the paper's 'FLOPs'); gflops = 2 x gmacs",
    }
    ref = paper_reference()
    if cfg.name in ref["models"] and imgsz is None and num_classes is None:
        row["paper"] = {k: ref["models"][cfg.name][k] for k in ("params_m", "flops_b")}
    return row
