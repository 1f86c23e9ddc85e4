"""The runner contract: dict[str, np.ndarray] -> dict[str, np.ndarray], plus the device it runs on."""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from edgedet.manifest import Manifest


class Runner(ABC):
    """One backend session. Owns nothing but the inference call; the Detector does the rest."""

    name: str = "base"

    def __init__(self, path: Path, manifest: Manifest, device: str | None = None, **options):
        self.path = Path(path)
        self.manifest = manifest
        self.options = options

    @property
    @abstractmethod
    def device(self) -> str:
        """Human-readable device the session runs on (e.g. 'CPU', 'cuda:0 (NVIDIA H100)')."""

    @abstractmethod
    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch synchronously."""

    @property
    def input_shape(self) -> list:
        """The artifact's own input shape (ints, or a str/None for dynamic dims), to check the manifest."""
        return []

    def versions(self) -> dict:
        return {}

    def close(self) -> None:
        pass
