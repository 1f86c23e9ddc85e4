"""Write a few real photographs (shipped with scikit-image) to a folder: `python -m edgedet.samples DIR`."""
from __future__ import annotations

import sys
from pathlib import Path

from .errors import BackendUnavailableError


def write_samples(folder: str | Path) -> list[Path]:
    try:
        import cv2
        from skimage import data
    except ImportError as e:
        raise BackendUnavailableError("samples", "cpu", e) from e
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        path = folder / f"{name}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(getattr(data, name)(), cv2.COLOR_RGB2BGR))
        out.append(path)
    return out


if __name__ == "__main__":
    for p in write_samples(sys.argv[1] if len(sys.argv) > 1 else "samples"):
        print(p)
