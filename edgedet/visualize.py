"""Draw detections on BGR images (OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np

from .detections import Detections


def color_for(class_id: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(class_id * 7919 + 17)
    return tuple(int(c) for c in rng.integers(64, 256, 3))


def draw(image: np.ndarray, dets: Detections, text: str | None = None) -> np.ndarray:
    out = image.copy()
    for (x1, y1, x2, y2), score, cid, label in zip(dets.xyxy, dets.scores, dets.class_ids, dets.labels):
        c = color_for(int(cid))
        p1, p2 = (int(x1), int(y1)), (int(x2), int(y2))
        cv2.rectangle(out, p1, p2, c, 2)
        caption = f"{label} {score:.2f}"
        (tw, th), _ = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        cv2.rectangle(out, (p1[0], max(0, p1[1] - th - 4)), (p1[0] + tw + 2, p1[1]), c, -1)
        cv2.putText(
            out, caption, (p1[0] + 1, max(th, p1[1] - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA
        )
    if text:
        cv2.putText(out, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 0), 2, cv2.LINE_AA)
    return out
