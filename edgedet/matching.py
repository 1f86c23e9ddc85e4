"""Two deployments' detections, matched: which boxes both found, which one missed, how far they moved.

Raw-tensor tolerances mislead across NMS (a score moving by 1e-4 can swap which of two overlapping boxes survives,
so whole output rows differ: TensorRT issues #2336 and #2691), so `edgedet compare` matches at the detection level:
per image and class, greedily by score (best first), each detection of A takes the unmatched detection of B of the
same class with the highest IoU, if that IoU reaches `iou`. Pure numpy.

The deploy threshold `conf` decides what counts, with a slack: a detection at or above `conf` on one side is
*matched* when the other side has the same box at or above `conf - slack` (its score just moved across the
threshold: that is a score delta, not a lost object); it is *missing* (only in A) or *extra* (only in B)
otherwise. Pairs below `conf` on both sides are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .detections import Detections

DEFAULT_IOU = 0.5
DEFAULT_SLACK = 0.05
DEGENERATE_PX = 0.5


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every xyxy box in a (N, 4) with every box in b (M, 4): (N, M). Two zero-area boxes (clipped to an image
    edge) have no IoU: they count as the same box (1.0) when no corner moved by more than DEGENERATE_PX, else 0."""
    a = np.asarray(a, np.float64).reshape(-1, 1, 4)
    b = np.asarray(b, np.float64).reshape(1, -1, 4)
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    union = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = union - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    same = np.abs(a - b).max(axis=-1) <= DEGENERATE_PX
    return np.where((union <= 0) & same, 1.0, iou)


@dataclass
class ImageMatch:
    """One image: index pairs (into A's and B's detections), their IoU and score delta (B - A), and the indices
    of A's detections B missed and B's extra ones."""

    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    ious: np.ndarray = field(default_factory=lambda: np.zeros(0))
    score_deltas: np.ndarray = field(default_factory=lambda: np.zeros(0))
    missing: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    extra: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def matched(self) -> int:
        return len(self.pairs)

    @property
    def max_score_delta(self) -> float:
        return float(np.abs(self.score_deltas).max()) if self.score_deltas.size else 0.0

    @property
    def min_iou(self) -> float:
        return float(self.ious.min()) if self.ious.size else 1.0


def match(
    a: Detections, b: Detections, conf: float, iou: float = DEFAULT_IOU, slack: float = DEFAULT_SLACK
) -> ImageMatch:
    """Match one image's detections of A and B (see the module docstring)."""
    floor = max(0.0, conf - slack)
    ia = np.flatnonzero(a.scores >= floor)
    ib = np.flatnonzero(b.scores >= floor)
    pairs, ious = [], []
    for cls in np.union1d(a.class_ids[ia], b.class_ids[ib]):
        ca = ia[a.class_ids[ia] == cls]
        cb = ib[b.class_ids[ib] == cls]
        if not ca.size or not cb.size:
            continue
        ca = ca[np.argsort(-a.scores[ca], kind="stable")]
        table = pairwise_iou(a.xyxy[ca], b.xyxy[cb])
        taken = np.zeros(cb.size, bool)
        for row, i in enumerate(ca):
            cand = np.where(taken, -1.0, table[row])
            j = int(np.argmax(cand))
            if cand[j] >= iou:
                taken[j] = True
                pairs.append((i, cb[j]))
                ious.append(cand[j])
    pairs_arr = np.asarray(pairs, np.int64).reshape(-1, 2)
    ious_arr = np.asarray(ious, np.float64)
    counted = np.maximum(a.scores[pairs_arr[:, 0]], b.scores[pairs_arr[:, 1]]) >= conf
    pairs_arr, ious_arr = pairs_arr[counted], ious_arr[counted]
    paired_a, paired_b = set(pairs_arr[:, 0].tolist()), set(pairs_arr[:, 1].tolist())
    # a pair below conf on both sides is not counted, and neither of its detections is missing or extra
    return ImageMatch(
        pairs=pairs_arr,
        ious=ious_arr,
        score_deltas=(b.scores[pairs_arr[:, 1]].astype(np.float64) - a.scores[pairs_arr[:, 0]]),
        missing=np.asarray([i for i in ia if a.scores[i] >= conf and i not in paired_a], np.int64),
        extra=np.asarray([j for j in ib if b.scores[j] >= conf and j not in paired_b], np.int64),
    )


def _spread(values: np.ndarray) -> dict:
    if not values.size:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    p50, p99 = np.percentile(values, [50, 99])
    return {"p50": _sig(p50), "p99": _sig(p99), "max": _sig(values.max())}


def _sig(x) -> float:
    """Three significant digits: float32 score deltas are ~1e-7, and rounding them to decimals would hide them."""
    return float(f"{float(x):.3g}")


def summarize(matches: list[ImageMatch]) -> dict:
    """Counts and spreads over every image: matched / missing / extra, match rate (matched over every counted
    detection, 1.0 when neither side found anything), |score delta| and 1 - IoU of the matched pairs (p50, p99,
    max), and the signed mean score delta (B - A: a systematic shift)."""
    matched = sum(m.matched for m in matches)
    missing = sum(len(m.missing) for m in matches)
    extra = sum(len(m.extra) for m in matches)
    deltas = np.concatenate([m.score_deltas for m in matches]) if matches else np.zeros(0)
    ious = np.concatenate([m.ious for m in matches]) if matches else np.zeros(0)
    total = matched + missing + extra
    return {
        "images": len(matches),
        "matched": matched,
        "missing": missing,
        "extra": extra,
        "match_rate": round(matched / total, 6) if total else 1.0,
        "score_delta": _spread(np.abs(deltas)),
        "score_shift_mean": _sig(deltas.mean()) if deltas.size else 0.0,
        "iou_delta": _spread(1.0 - ious),
        "min_iou": _sig(ious.min()) if ious.size else 1.0,
    }


def worst(matches: list[ImageMatch], names: list[str], n: int = 5) -> list[dict]:
    """The n images that differ most: most missing + extra detections, then the largest score delta, then the
    lowest IoU; images that agree exactly are left out."""

    def badness(m: ImageMatch):
        return (len(m.missing) + len(m.extra), m.max_score_delta, 1.0 - m.min_iou)

    order = sorted(range(len(matches)), key=lambda i: badness(matches[i]), reverse=True)
    out = []
    for i in order[:n]:
        m = matches[i]
        if badness(m) == (0, 0.0, 0.0):
            break
        out.append(
            {
                "image": names[i],
                "matched": m.matched,
                "missing": len(m.missing),
                "extra": len(m.extra),
                "max_score_delta": _sig(m.max_score_delta),
                "min_iou": _sig(m.min_iou),
            }
        )
    return out
