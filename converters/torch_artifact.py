"""Save a model as a torch artifact: its state dict (.pth, effdet layout) plus a manifest."""

from __future__ import annotations

from pathlib import Path

from edgedet.classes import fit_class_names
from edgedet.fileio import publish
from edgedet.manifest import (
    HOST_OUTPUTS,
    INPUT_NAME,
    BatchSection,
    InputSection,
    Manifest,
    PostprocessSection,
    tool_versions,
)

from .onnx_export import model_cost_section


def save_torch_artifact(
    model, out_path: str | Path, class_names=None, weights_info=None, precision: str = "fp32", max_batch: int = 64
) -> Path:
    import torch

    cfg = model.config
    out_path = Path(out_path)
    manifest = Manifest(
        model=cfg.to_dict(),
        class_names=fit_class_names(class_names, cfg.num_classes),
        input=InputSection(
            name=INPUT_NAME,
            shape=["batch", 3, *cfg.image_size],
            layout="NCHW",
            dtype="float32",
            color="RGB",
            mean=list(cfg.mean),
            std=list(cfg.std),
        ),
        outputs=list(HOST_OUTPUTS),
        postprocess=PostprocessSection(
            in_graph=False, score_threshold=0.0, iou_threshold=0.5, max_candidates=1000, max_det=100
        ),
        batch=BatchSection(dynamic=True, min=1, max=max_batch),
        cost=model_cost_section(cfg),
        precision=precision,
        weights=weights_info,
        tools=tool_versions("torch", "timm"),
    )
    with publish(out_path) as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
        manifest.write(tmp)
    return out_path
