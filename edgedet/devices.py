"""Device strings, parsed once: 'cpu', 'cuda', 'cuda:1', 'gpu', 'GPU.1' (OpenVINO), 'npu', 'auto'.

A backend's spec lists the device kinds it accepts; a kind it does not accept, or an index it cannot honour,
is an InputError, never a silent fall-back to another device.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InputError

KINDS = ("cpu", "cuda", "gpu", "npu", "auto")
_RX = re.compile(r"^(?P<kind>[a-z]+)(?:[:.](?P<index>\d+))?$")


@dataclass(frozen=True)
class Device:
    kind: str
    index: int | None = None

    def __str__(self) -> str:
        return self.kind if self.index is None else f"{self.kind}:{self.index}"

    @property
    def ordinal(self) -> int:
        return self.index or 0


def parse_device(value: "str | Device | None", default: str = "cpu") -> Device:
    if isinstance(value, Device):
        return value
    text = (value if value is not None else default).strip().lower()
    m = _RX.match(text)
    if not m or m["kind"] not in KINDS:
        raise InputError(f"unknown device {value!r}; use one of cpu, cuda, cuda:N, gpu, gpu:N, npu, auto")
    return Device(m["kind"], None if m["index"] is None else int(m["index"]))


def check_device(device: Device, accepted: tuple[str, ...], backend: str) -> Device:
    if device.kind not in accepted:
        raise InputError(f"backend '{backend}' does not run on device '{device}'; it accepts: {', '.join(accepted)}")
    return device
