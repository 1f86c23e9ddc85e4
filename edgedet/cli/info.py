"""`edgedet info`: model configuration, parameters and FLOPs."""

from __future__ import annotations

import json

from .common import models, positive

HELP = "model configuration, parameters and FLOPs"


def add_arguments(p):
    p.add_argument("--model", type=models, required=True, help="d0..d7, d7x, lite0..lite4, lite3x, test (comma list)")
    p.add_argument("--imgsz", type=positive, help="override the input size")
    p.add_argument("--num-classes", type=positive)
    p.add_argument("--json", action="store_true")


def run(a) -> int:
    from edgedet.info import model_info

    rows = [model_info(m, imgsz=a.imgsz, num_classes=a.num_classes) for m in a.model]
    if a.json:
        print(json.dumps(rows[0] if len(rows) == 1 else rows, indent=2))
        return 0
    for r in rows:
        paper = r.get("paper") or {}
        print(
            f"{r['model']}: input {r['input_size'][0]}x{r['input_size'][1]}, backbone {r['backbone']}, "
            f"BiFPN {r['bifpn_width']}x{r['bifpn_depth']}, head depth {r['head_depth']}, "
            f"levels P{r['min_level']}-P{r['max_level']}"
        )
        line = (
            f"  params {r['params']:,} ({r['params'] / 1e6:.2f}M)   {r['gmacs']:.3f} GMACs (multiply-adds) = "
            f"{r['gflops']:.3f} GFLOPs"
        )
        if paper:
            line += f"   [paper: {paper['params_m']}M params, {paper['flops_b']}B multiply-adds]"
        print(line)
    return 0
