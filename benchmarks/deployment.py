"""A deployment, spelled on one line: what runs (artifact, model name or server URL), on which backend, at which
runtime precision, with which runtime options.

    SOURCE[@BACKEND[:PRECISION][,OPTION=VALUE...]]

    d0.xml                          the artifact on its format's backend, runtime defaults
    d0.onnx@openvino                the ONNX artifact on OpenVINO
    d0.xml@openvino:f32             ... with f32 arithmetic (the backend's exact_options row)
    d0.xml@openvino:bf16,threads=1  ... in bf16 on one thread
    d0@onnxruntime                  a model name, built through the artifact cache (--weights/--imgsz apply)
    d0@openvino,postprocess=graph   a model name's build keyword (edgedet.api.BUILD_KEYS) beside runtime options
    grpc://host:8001/d0             a model on a Triton server

PRECISION is the precision the backend executes, not the one the artifact was built in: `f32` applies the
backend row's `exact_options` (no reduced-precision hints); `bf16`/`f16` set the runner's `inference_precision`
option where it declares one. Whatever was asked, the Detector's executed precision is checked after loading: a
backend that cannot run the artifact at that precision is an InputError, never a silent fall-back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from edgedet.errors import InputError
from edgedet.precision import float_part
from edgedet.registry import BackendSpec, get_backend

PRECISIONS = ("f32", "bf16", "f16")
_TAIL = re.compile(r"^(?P<backend>[A-Za-z][\w-]*)(?::(?P<precision>\w+))?(?:,(?P<options>.*))?$")


def _value(text: str):
    """An option value as typed: integers and true/false become numbers and booleans."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if re.fullmatch(r"-?\d+", low):
        return int(low)
    return text.strip()


@dataclass(frozen=True)
class Deployment:
    source: str
    backend: BackendSpec | None = None
    precision: str | None = None
    options: tuple = ()  # (name, value) pairs: runtime options, and build keywords for a model name

    @classmethod
    def parse(cls, text: str) -> "Deployment":
        text = str(text).strip()
        if not text:
            raise InputError("empty deployment: give an artifact, a model name or a server URL")
        if "@" not in text or Path(text).is_file():
            return cls(text)
        source, _, tail = text.rpartition("@")
        m = _TAIL.match(tail)
        if not source or not m:
            raise InputError(f"cannot read deployment '{text}': expected SOURCE[@BACKEND[:PRECISION][,OPTION=VALUE]]")
        precision = m["precision"].lower() if m["precision"] else None
        if precision is not None and precision not in PRECISIONS:
            raise InputError(f"'{text}': runtime precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
        options = []
        for item in filter(None, (m["options"] or "").split(",")):
            name, eq, value = item.partition("=")
            if not eq or not name.strip():
                raise InputError(f"'{text}': options are NAME=VALUE, got '{item}'")
            options.append((name.strip(), _value(value)))
        return cls(source, get_backend(m["backend"]), precision, tuple(options))

    @property
    def spelling(self) -> str:
        if self.backend is None:
            return self.source
        tail = self.backend.name + (f":{self.precision}" if self.precision else "")
        opts = "".join(f",{k}={v}" for k, v in self.options)
        return f"{self.source}@{tail}{opts}"

    def runtime_options(self) -> dict:
        """The options the precision asks for (from the backend's table row and runner), then the given ones."""
        out = {}
        if self.precision == "f32":
            out.update(self.backend.exact_options)
        elif self.precision is not None:
            declared = self.backend.runner_class().OPTIONS.get("inference_precision")
            if declared is None or self.precision not in declared.choices:
                raise InputError(
                    f"backend {self.backend.name} has no runtime precision option for {self.precision}: build an "
                    "artifact in that precision instead (edgedet export --precision fp16)"
                )
            out["inference_precision"] = self.precision
        return {**out, **dict(self.options)}

    def load(self, score_threshold: float, device: str | None = None, **build_kw):
        """The Detector of this deployment; `build_kw` (weights, imgsz) apply when the source is a model name."""
        from edgedet.api import is_model_name, load

        kw = dict(build_kw) if is_model_name(self.source) else {}
        options = self.runtime_options() if self.backend is not None else {}
        clash = sorted(set(options) & ({"score_threshold", "device", "backend"} | set(kw)))
        if clash:
            raise InputError(
                f"{self.spelling}: {', '.join(clash)} cannot be a deployment option (give it as the command's "
                f"--{clash[0].replace('_', '-')} instead)"
            )
        det = load(self.source, backend=self.backend, device=device, score_threshold=score_threshold, **kw, **options)
        if self.precision is not None:
            executed = det.runner.execution_precision
            if float_part(executed) != self.precision:
                det.close()
                raise InputError(
                    f"{self.spelling}: {det.backend} executes {executed} here, not {self.precision} (this device or "
                    "artifact does not support it)"
                )
        return det
