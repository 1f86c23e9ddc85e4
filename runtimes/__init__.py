"""Runtimes: one runner per backend, chosen by artifact suffix through a registry, and the Detector."""
from .detector import Detector, Timing
from .registry import BackendSpec, backend_names, get_backend, is_available, register_backend
from .sources import CaptureOptions, open_source
from .stream import DetectionStream, StreamItem

__all__ = ["Detector", "Timing", "BackendSpec", "backend_names", "get_backend", "is_available", "register_backend",
           "CaptureOptions", "open_source", "DetectionStream", "StreamItem"]
