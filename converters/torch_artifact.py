"""Save a model as a torch artifact: its state dict (.pth, effdet layout) plus a manifest."""
from __future__ import annotations

from pathlib import Path

from edgedet.classes import default_class_names
from edgedet.fileio import atomic_path
from edgedet.manifest import Manifest, describe_artifact, manifest_path, tool_versions


def save_torch_artifact(model, out_path: str | Path, class_names=None, weights_info=None,
                        precision: str = "fp32", max_batch: int = 64) -> Path:
    import torch

    cfg = model.config
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path(out_path).unlink(missing_ok=True)
    with atomic_path(out_path) as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    manifest = Manifest(
        model=cfg.to_dict(), class_names=list(class_names or default_class_names(cfg.num_classes)),
        artifact=describe_artifact(out_path, "torch"), outputs=["logits", "deltas"],
        input={"name": "images", "shape": ["batch", 3, *cfg.image_size], "layout": "NCHW", "dtype": "float32",
               "color": "RGB", "mean": list(cfg.mean), "std": list(cfg.std), "normalize": "host",
               "letterbox": "bottom-right"},
        postprocess={"in_graph": False, "score_threshold": 0.0, "iou_threshold": 0.5, "max_candidates": 1000,
                     "max_det": 100, "clip": True},
        batch={"dynamic": True, "min": 1, "max": max_batch}, precision=precision, weights=weights_info,
        tools=tool_versions("torch", "timm"),
    )
    manifest.write(out_path)
    return out_path
