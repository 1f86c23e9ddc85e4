"""Weight files: local paths, known public checkpoints with verified hashes, file hashing."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from .errors import ArtifactError, InputError
from .fileio import atomic_path

_BASE = "https://github.com/rwightman/efficientdet-pytorch/releases/download/v0.1/"
# Published effdet COCO checkpoints. The hex suffix of each file name is the prefix of its SHA-256
# (torch.hub convention); downloads are verified against it before they are kept.
PUBLIC_CHECKPOINTS = {
    "d0": "tf_efficientdet_d0_34-f153e0cf.pth",
    "d1": "tf_efficientdet_d1_40-a30f94af.pth",
    "d2": "tf_efficientdet_d2_43-8107aa99.pth",
    "d3": "tf_efficientdet_d3_47-0b525f35.pth",
    "d4": "tf_efficientdet_d4_49-f56376d9.pth",
    "d5": "tf_efficientdet_d5_51-c79f9be6.pth",
    "d6": "tf_efficientdet_d6_52-4eda3773.pth",
    "d7": "tf_efficientdet_d7_53-6d1d7a95.pth",
    "d7x": "tf_efficientdet_d7x-f390b87c.pth",
    "lite0": "tf_efficientdet_lite0-dfacfc78.pth",
    "lite1": "tf_efficientdet_lite1-6dc7ab30.pth",
    "lite2": "tf_efficientdet_lite2-86c5d55b.pth",
    "lite3": "tf_efficientdet_lite3-506852cb.pth",
    "lite3x": "tf_efficientdet_lite3x-8404c57b.pth",
    "lite4": "tf_efficientdet_lite4-391ddabc.pth",
}


def cache_dir() -> Path:
    root = os.environ.get("EDGEDET_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "edgedet")
    return Path(root)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def resolve_weights(weights: str | Path, cfg) -> Path:
    """A local file path, or 'coco' -> the published checkpoint for cfg (downloaded and verified)."""
    if str(weights).lower() == "coco":
        if cfg.name not in PUBLIC_CHECKPOINTS:
            raise InputError(f"no published COCO checkpoint for '{cfg.name}'")
        return download_checkpoint(PUBLIC_CHECKPOINTS[cfg.name])
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ArtifactError(f"weights file not found: {path}")
    return path


def download_checkpoint(filename: str, timeout: float = 30.0) -> Path:
    dest = cache_dir() / "weights" / filename
    expected = filename.rsplit("-", 1)[-1].split(".")[0]
    if dest.is_file() and file_sha256(dest).startswith(expected):
        return dest
    url = _BASE + filename
    try:
        with atomic_path(dest) as tmp, urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
            h = hashlib.sha256()
            for block in iter(lambda: resp.read(1 << 20), b""):
                h.update(block)
                out.write(block)
            if not h.hexdigest().startswith(expected):
                raise ArtifactError(
                    f"downloaded {filename} has SHA-256 {h.hexdigest()[:12]}..., expected "
                    f"{expected}...: refusing to use it"
                )
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise ArtifactError(
            f"cannot download {url} ({e}); offline? download it elsewhere and pass --weights /path/to/{filename}"
        ) from None
    return dest
