"""The environment a benchmark ran in: CPU, cores, GPU, library versions."""
from __future__ import annotations

import os
import platform
from importlib import metadata


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    wanted = ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"]
                    return [w for w in wanted if w in flags]
    except OSError:
        pass
    return []


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
    for pkg in ("edgedet", "numpy", "opencv-python-headless", "torch", "timm", "onnx", "onnxruntime", "openvino",
                "nncf", "tensorrt", "effdet"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return {
        "cpu": cpu_model(), "cpu_flags": cpu_flags(), "logical_cores": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "gpu": gpu_name(), "os": platform.platform(), "python": platform.python_version(), "versions": versions,
    }
