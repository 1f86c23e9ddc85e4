"""create_model() and checkpoint loading in the effdet state-dict layout."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..configs import ModelConfig, get_config
from ..errors import ArtifactError
from ..weights import resolve_weights
from .efficientdet import EfficientDet

_WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")
_PREFIXES = ("module.", "model.")


def create_model(
    name: str | ModelConfig,
    num_classes: int | None = None,
    weights: str | Path | None = None,
    pretrained_backbone: bool = False,
    image_size: int | None = None,
    device: str | torch.device = "cpu",
) -> EfficientDet:
    """Build an EfficientDet of the family by name (d0..d7, d7x, lite0..lite4, lite3x, test).

    weights: a local .pth in effdet layout (optionally wrapped in state_dict/model), or 'coco' for the
    published effdet checkpoint (downloaded once, hash-verified). A checkpoint with another class count
    loads everything but the class head, which is re-initialised (with a warning).
    """
    cfg = name if isinstance(name, ModelConfig) else get_config(name, image_size=image_size)
    if isinstance(name, ModelConfig) and image_size is not None:
        cfg = cfg.replace(image_size=(image_size, image_size))
    target_classes = cfg.num_classes if num_classes is None else int(num_classes)
    state = None
    if weights is not None:
        state = read_state_dict(resolve_weights(weights, cfg))
        ckpt_classes = _checkpoint_classes(state, cfg)
        if ckpt_classes is not None:
            cfg = cfg.replace(num_classes=ckpt_classes)
    elif target_classes != cfg.num_classes:
        cfg = cfg.replace(num_classes=target_classes)
    model = EfficientDet(cfg, pretrained_backbone=pretrained_backbone and state is None)
    if state is not None:
        load_weights(model, state, source=str(weights))
        if target_classes != model.config.num_classes and num_classes is not None:
            warnings.warn(
                f"checkpoint has {model.config.num_classes} classes, model asked for {target_classes}: "
                "the class head is re-initialised (fine-tune before use)",
                stacklevel=2,
            )
            model.reset_class_head(target_classes)
    return model.to(device).eval()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ArtifactError(
            f"cannot read weights file {path}: not a valid PyTorch checkpoint "
            f"({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        ) from None
    for key in _WRAPPER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ArtifactError(f"{path} does not hold a state dict of tensors")
    out = {}
    for k, v in obj.items():
        for p in _PREFIXES:
            if k.startswith(p):
                k = k[len(p) :]
        if k.startswith("anchors."):  # effdet train/predict bench buffers
            continue
        out[k] = v
    return out


def checkpoint_class_names(path: str | Path) -> list[str] | None:
    """Class names stored beside the weights by `edgedet train` (None for plain state dicts)."""
    try:
        obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception:
        return None
    names = obj.get("class_names") if isinstance(obj, dict) else None
    return [str(n) for n in names] if isinstance(names, (list, tuple)) else None


def _checkpoint_classes(state: dict, cfg: ModelConfig) -> int | None:
    w = state.get("class_net.predict.conv_pw.weight")
    if w is None or w.shape[0] % cfg.num_anchors:
        return None
    return w.shape[0] // cfg.num_anchors


def load_weights(model: EfficientDet, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Strict load with an explanation when the checkpoint belongs to another model."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shape = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or shape:
        parts = []
        if shape:
            k = shape[0]
            parts.append(
                f"{len(shape)} shape mismatches (e.g. {k}: checkpoint {tuple(state[k].shape)} vs "
                f"model {tuple(own[k].shape)})"
            )
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        raise ArtifactError(
            f"weights {source} do not match model '{model.config.name}': " + "; ".join(parts) + guess_model_hint(state)
        )
    model.load_state_dict(state, strict=True)


def guess_model_hint(state: dict) -> str:
    w = state.get("fpn.cell.0.fnode.0.after_combine.conv.conv_pw.weight")
    if w is None:
        return " (is this an EfficientDet checkpoint in effdet layout?)"
    reps = len({k.split(".")[2] for k in state if k.startswith("fpn.cell.")})
    return f" (checkpoint has BiFPN width {w.shape[0]} and depth {reps})"
