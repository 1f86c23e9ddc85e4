"""The environment a benchmark ran in: CPU, cores, GPU, library versions."""

from __future__ import annotations

import os
import platform
from importlib import metadata

from edgedet.cpu import cpu_model, isa_flags


def gpu_name() -> str | None:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:
        pass
    return None


def environment() -> dict:
    versions = {}
    for pkg in (
        "edgedet",
        "numpy",
        "opencv-python-headless",
        "torch",
        "timm",
        "onnx",
        "onnxruntime",
        "openvino",
        "nncf",
        "tensorrt",
        "effdet",
    ):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return {
        "cpu": cpu_model(),
        "cpu_flags": isa_flags(),
        "logical_cores": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "gpu": gpu_name(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }
