"""EfficientDet anchors in numpy (effdet order: level -> y -> x -> octave -> aspect), boxes as y1,x1,y2,x2."""

from __future__ import annotations

import numpy as np


def feature_sizes(image_size, max_level: int) -> list[tuple[int, int]]:
    sizes = [tuple(int(s) for s in image_size)]
    for _ in range(max_level):
        h, w = sizes[-1]
        sizes.append(((h - 1) // 2 + 1, (w - 1) // 2 + 1))
    return sizes


def generate_anchors(
    image_size,
    min_level: int = 3,
    max_level: int = 7,
    num_scales: int = 3,
    aspect_ratios=((1.0, 1.0), (1.4, 0.7), (0.7, 1.4)),
    anchor_scale: float = 4.0,
) -> np.ndarray:
    """(A, 4) float32 anchors [y1, x1, y2, x2] in input-image pixels.

    Anchor size = anchor_scale * stride * 2^(octave / num_scales), stretched by the aspect pair (x, y).
    """
    sizes = feature_sizes(image_size, max_level)
    h0, w0 = sizes[0]
    per_level = []
    for level in range(min_level, max_level + 1):
        fh, fw = sizes[level]
        sy, sx = h0 / fh, w0 / fw
        y = np.arange(sy / 2, h0, sy)
        x = np.arange(sx / 2, w0, sx)
        xv, yv = np.meshgrid(x, y)
        centers = np.stack([yv.ravel(), xv.ravel()], axis=1)  # (H*W, 2)
        half = []
        for octave in range(num_scales):
            for ax, ay in aspect_ratios:
                base = anchor_scale * 2 ** (octave / num_scales)
                half.append((base * sy * ay / 2.0, base * sx * ax / 2.0))
        half = np.asarray(half)  # (K, 2) as (hy, hx)
        boxes = np.concatenate([centers[:, None, :] - half[None], centers[:, None, :] + half[None]], axis=2)
        per_level.append(boxes.reshape(-1, 4))
    return np.concatenate(per_level, axis=0).astype(np.float32)


def anchors_for(cfg) -> np.ndarray:
    """Anchors from a ModelConfig or a manifest's model dict."""
    get = (lambda k: cfg[k]) if isinstance(cfg, dict) else (lambda k: getattr(cfg, k))
    return generate_anchors(
        get("image_size"),
        get("min_level"),
        get("max_level"),
        get("num_scales"),
        [tuple(a) for a in get("aspect_ratios")],
        get("anchor_scale"),
    )
