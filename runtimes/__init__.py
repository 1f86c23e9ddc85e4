"""Runtimes: one runner per backend (rows of edgedet.registry.BACKENDS), the Detector, streaming.

Only numpy, OpenCV and the backend's own library are imported here: no torch (unless the torch backend runs),
and never the converters. Building an artifact from a model name is the facade's job: `edgedet.load()`."""

from .detector import Detector, Timing
from .sources import CaptureOptions, open_source
from .stream import DetectionStream, StreamItem

__all__ = ["Detector", "Timing", "CaptureOptions", "open_source", "DetectionStream", "StreamItem"]
