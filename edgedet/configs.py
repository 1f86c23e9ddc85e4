"""EfficientDet family configurations as data (no torch import).

Compound scaling, taken literally from the paper's Table 1 rather than from its formulas, because
the published models deviate from them: input 512 + 128*phi except D5/D6 at 1280 and D7 at 1536;
BiFPN width 64 * 1.35^phi rounded as published; BiFPN depth 3 + phi except D5 = 7 and D6/D7 = 8;
head depth 3 + floor(phi / 3). Backbone EfficientNet-B{phi}; D7 reuses B6 at 1536 px with anchor
scale 5; D7x uses B7 with one more level (P3-P8).
Lite0-4 follow the effdet / AutoML configs: ReLU6, unweighted sum fusion, mean/std 0.5.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Paper Table 1, indexed by phi = 0..7.
INPUT_SIZES = (512, 640, 768, 896, 1024, 1280, 1280, 1536)
BIFPN_WIDTHS = (64, 88, 112, 160, 224, 288, 384, 384)
BIFPN_DEPTHS = (3, 4, 5, 6, 7, 7, 8, 8)
HEAD_DEPTHS = (3, 3, 3, 4, 4, 4, 5, 5)


@dataclass(frozen=True)
class ModelConfig:
    name: str
    backbone: str  # timm model name
    image_size: tuple[int, int]  # (H, W)
    fpn_channels: int
    fpn_repeats: int  # BiFPN depth
    head_repeats: int  # box/class net depth
    num_classes: int = 90
    min_level: int = 3
    max_level: int = 7
    num_scales: int = 3
    aspect_ratios: tuple[tuple[float, float], ...] = ((1.0, 1.0), (1.4, 0.7), (0.7, 1.4))
    anchor_scale: float = 4.0
    act: str = "silu"  # BiFPN / head activation: silu | relu6
    fusion: str = "fastattn"  # BiFPN node fusion: fastattn | sum
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    effdet_name: str | None = None  # the matching effdet model name, for weights compatibility
    extra: dict = field(default_factory=dict)

    @property
    def num_levels(self) -> int:
        return self.max_level - self.min_level + 1

    @property
    def num_anchors(self) -> int:
        return self.num_scales * len(self.aspect_ratios)

    @property
    def stride_multiple(self) -> int:
        return 32  # backbone output stride; P6+ levels use ceil halving (TF 'SAME'), as effdet

    def replace(self, **changes) -> "ModelConfig":
        cfg = dataclasses.replace(self, **changes)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        h, w = self.image_size
        m = self.stride_multiple
        if h <= 0 or w <= 0 or h % m or w % m:
            raise InputError(
                f"input size {h}x{w} is not supported for {self.name}: height and width must be "
                f"positive multiples of {m}, e.g. {max(m, (h // m) * m)}"
            )
        if self.num_classes < 1:
            raise InputError(f"num_classes must be >= 1, got {self.num_classes}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["image_size"] = list(self.image_size)
        d["aspect_ratios"] = [list(a) for a in self.aspect_ratios]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d["image_size"] = tuple(d["image_size"])
        d["aspect_ratios"] = tuple(tuple(a) for a in d["aspect_ratios"])
        d["mean"] = tuple(d["mean"])
        d["std"] = tuple(d["std"])
        return cls(**d)


def _d(phi: int, **over) -> ModelConfig:
    size = INPUT_SIZES[phi]
    cfg = dict(
        name=f"d{phi}",
        backbone=f"tf_efficientnet_b{phi}",
        image_size=(size, size),
        fpn_channels=BIFPN_WIDTHS[phi],
        fpn_repeats=BIFPN_DEPTHS[phi],
        head_repeats=HEAD_DEPTHS[phi],
        effdet_name=f"tf_efficientdet_d{phi}",
    )
    if phi >= 6:
        cfg["fusion"] = "sum"  # effdet / AutoML: unweighted sum for D6+ for training stability
    cfg.update(over)
    return ModelConfig(**cfg)


def _lite(name: str, backbone: str, size: int, width: int, depth: int, head: int, anchor_scale: float) -> ModelConfig:
    return ModelConfig(
        name=name,
        backbone=backbone,
        image_size=(size, size),
        fpn_channels=width,
        fpn_repeats=depth,
        head_repeats=head,
        anchor_scale=anchor_scale,
        act="relu6",
        fusion="sum",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        effdet_name=f"tf_efficientdet_{name}",
    )


MODELS: dict[str, ModelConfig] = {
    c.name: c
    for c in (
        *(_d(phi) for phi in range(7)),
        _d(7, backbone="tf_efficientnet_b6", anchor_scale=5.0),
        _d(7, name="d7x", backbone="tf_efficientnet_b7", max_level=8, effdet_name="tf_efficientdet_d7x"),
        _lite("lite0", "tf_efficientnet_lite0", 320, 64, 3, 3, 3.0),
        _lite("lite1", "tf_efficientnet_lite1", 384, 88, 4, 3, 3.0),
        _lite("lite2", "tf_efficientnet_lite2", 448, 112, 5, 3, 3.0),
        _lite("lite3", "tf_efficientnet_lite3", 512, 160, 6, 4, 4.0),
        _lite("lite3x", "tf_efficientnet_lite3", 640, 200, 6, 4, 3.0),
        _lite("lite4", "tf_efficientnet_lite4", 640, 224, 7, 4, 4.0),
        # Tiny variant for fast tests: same architecture (SE, swish, TF-same padding), few channels, 128 px.
        ModelConfig(
            name="test",
            backbone="tf_efficientnet_b0",
            image_size=(128, 128),
            fpn_channels=16,
            fpn_repeats=2,
            head_repeats=2,
        ),
    )
}


def get_config(
    name: str, num_classes: int | None = None, image_size: int | tuple[int, int] | None = None
) -> ModelConfig:
    key = name.lower().strip()
    key = {f"efficientdet-{k}": k for k in MODELS}.get(key, key)
    key = {f"tf_efficientdet_{k}": k for k in MODELS}.get(key, key)
    if key not in MODELS:
        raise InputError(f"unknown model '{name}'; choose one of: {', '.join(MODELS)}")
    cfg = MODELS[key]
    changes = {}
    if num_classes is not None:
        changes["num_classes"] = int(num_classes)
    if image_size is not None:
        changes["image_size"] = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    return cfg.replace(**changes) if changes else cfg
