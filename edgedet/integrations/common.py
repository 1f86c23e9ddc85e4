"""What the Ray integrations share: the lazy import of Ray (naming the extra when it is missing) and the split of
the machine's cores between the actors or replicas that each hold a Detector."""

from __future__ import annotations

import os

from edgedet.errors import BackendUnavailableError


def import_ray(*submodules: str):
    """`ray`, with `ray.<submodule>` imported; a missing install names the pip extra."""
    import importlib

    try:
        ray = importlib.import_module("ray")
        for sub in submodules:
            importlib.import_module(f"ray.{sub}")
    except ImportError as e:
        raise BackendUnavailableError("ray", "ray", e) from e
    return ray


def ray_address(address: str | None) -> str:
    """The Ray a command joins: the address given, else $RAY_ADDRESS, else "local", a new Ray of the command's own.
    (Ray's own default, no address, would join a cluster that `ray start` left running on this machine.)"""
    return address or os.environ.get("RAY_ADDRESS") or "local"


def threads_per_worker(artifact: str, backend, workers: int, options: dict) -> dict:
    """Split the cores between workers, for runners that take a thread count (no oversubscription)."""
    from edgedet.registry import backend_for, remote_backend

    spec = remote_backend(artifact) or backend_for(artifact, backend)
    if "threads" in spec.runner_class().OPTIONS and "threads" not in options:
        options = {**options, "threads": max(1, (os.cpu_count() or 1) // max(1, workers))}
    return options
