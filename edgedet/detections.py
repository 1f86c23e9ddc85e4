"""Detections: the one result type of every backend."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Detections:
    xyxy: np.ndarray  # (N, 4) float32, original-image pixels
    scores: np.ndarray  # (N,) float32, descending
    class_ids: np.ndarray  # (N,) int64, 0-based
    labels: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.xyxy = np.asarray(self.xyxy, np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        self.class_ids = np.asarray(self.class_ids, np.int64).reshape(-1)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), [])

    def filter(self, min_score: float) -> "Detections":
        keep = self.scores >= min_score
        return Detections(
            self.xyxy[keep], self.scores[keep], self.class_ids[keep], [l for l, k in zip(self.labels, keep) if k]
        )

    def to_dict(self) -> dict:
        return {
            "boxes": self.xyxy.astype(np.float64).round(2).tolist(),
            "scores": self.scores.astype(np.float64).round(5).tolist(),
            "class_ids": self.class_ids.tolist(),
            "labels": list(self.labels),
        }

    def to_supervision(self):
        try:
            import supervision as sv
        except ImportError as e:
            from .errors import BackendUnavailableError

            raise BackendUnavailableError("supervision", "supervision", e) from e
        return sv.Detections(
            xyxy=self.xyxy.copy(),
            confidence=self.scores.copy(),
            class_id=self.class_ids.copy(),
            data={"class_name": np.asarray(self.labels)},
        )

    def __repr__(self) -> str:
        return f"Detections(n={len(self)}, labels={self.labels[:5]}{'...' if len(self) > 5 else ''})"
