"""Formats and backends as data: the one table of each.

A *format* is what a converter writes (ONNX, OpenVINO IR, TensorRT plan, torch state dict). A *backend* is
what runs formats (onnxruntime, openvino, tensorrt, torch). A user's name is parsed once, at the edge (the
CLI or the public API), into its spec, and the spec is passed on. Code never compares names: it reads a
field of the spec.

Builders and runners are named as "module:attribute" strings and imported only when used, so this table
imports nothing heavy, and the core does not import converters or runtimes (see docs/architecture.md).

Adding a backend = one runner file + one BACKENDS row. Adding a format = one builder + one FORMATS row.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import ArtifactError, BackendUnavailableError, InputError


@dataclass(frozen=True)
class FormatSpec:
    name: str
    suffixes: tuple[str, ...]  # the first is the one a converter writes
    builder: str  # "module:function" (req, path) -> path, in edgedet.converters
    library: str  # import name the builder needs
    extra: str  # pip extra that installs it
    precisions: tuple[str, ...]  # build precisions the builder accepts
    sidecars: tuple[str, ...] = ()  # companion files, by suffix (OpenVINO's .bin)
    device_specific: bool = False  # the artifact only runs on the GPU model it was built on (engines)
    from_onnx: str = ""  # "module:function"(onnx_path, out_path, options) for `edgedet build`
    offline_command: str = ""  # "module:function" giving the equivalent command line where the library
    description: str = ""  # is absent (trtexec for engines)
    embedding: str = ""  # "module:attr" of the edgedet.embedded.Embedding that carries the manifest in the file

    @property
    def suffix(self) -> str:
        return self.suffixes[0]


@dataclass(frozen=True)
class BackendSpec:
    name: str
    runner: str  # "module:Class" in edgedet.runtimes
    library: str  # import name of the library that runs it
    extra: str  # pip extra that installs it
    formats: tuple[str, ...]  # formats it runs; the first is the one built for it from a model name
    devices: tuple[str, ...]  # device kinds it accepts (see edgedet.devices)
    aliases: tuple[str, ...] = ()
    # runtime options per bench mode (latency: batch 1; throughput: several requests in flight)
    run_options: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    static_check: str = ""  # "module:function"(onnx, min_batch, max_batch) -> report, runs without it
    # runtime options for exact FP32 arithmetic (parity tests, accuracy gates): no reduced-precision hints
    exact_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    auto: bool = False  # a candidate when no backend is named (measured on this machine)
    schemes: tuple[str, ...] = ()  # URL schemes of a remote server it speaks to (source grpc://host/model)
    description: str = ""

    @property
    def build_format(self) -> "FormatSpec":
        return get_format(self.formats[0])

    def options_for(self, mode: str) -> dict:
        return dict(self.run_options.get(mode, {}))

    def available(self) -> bool:
        try:
            importlib.import_module(self.library)
        except Exception:
            return False
        return True

    def runner_class(self):
        """The runner class; BackendUnavailableError naming the pip extra when the library is absent."""
        try:
            importlib.import_module(self.library)
        except ImportError as e:
            raise BackendUnavailableError(self.name, self.extra, e) from e
        return load_object(self.runner)


def _ro(d: dict) -> Mapping:
    return MappingProxyType({k: MappingProxyType(v) for k, v in d.items()})


FORMATS: dict[str, FormatSpec] = {
    f.name: f
    for f in (
        FormatSpec(
            "onnx",
            (".onnx",),
            "edgedet.converters.builders:build_onnx",
            "onnx",
            "export",
            ("fp32", "fp16"),
            description="ONNX opset 17, static or dynamic batch, host or in-graph post-processing",
            embedding="edgedet.embedded:ONNX",
        ),
        FormatSpec(
            "openvino",
            (".xml",),
            "edgedet.converters.builders:build_openvino",
            "openvino",
            "openvino",
            ("fp32", "fp16"),
            sidecars=(".bin",),
            from_onnx="edgedet.converters.builders:openvino_from_onnx",
            description="OpenVINO IR (.xml + .bin)",
            embedding="edgedet.embedded:OPENVINO",
        ),
        FormatSpec(
            "tensorrt",
            (".engine", ".plan"),
            "edgedet.converters.builders:build_tensorrt",
            "tensorrt",
            "tensorrt",
            ("fp32", "fp16"),
            device_specific=True,
            from_onnx="edgedet.converters.builders:tensorrt_from_onnx",
            offline_command="edgedet.converters.tensorrt_engine:trtexec_line",
            description="serialized TensorRT plan",
        ),
        FormatSpec(
            "torch",
            (".pth", ".pt"),
            "edgedet.converters.builders:build_torch",
            "torch",
            "export",
            ("fp32", "fp16"),
            description="effdet-layout state dict",
        ),
        FormatSpec(
            "deepstream",
            (".deepstream",),
            "edgedet.converters.builders:build_deepstream",
            "onnx",
            "export",
            ("fp32", "fp16"),
            description="DeepStream nvinfer folder <out>/<name>-deepstream/{config_infer_primary.txt,labels.txt,"
            "<name>.onnx}: efficientnms outputs, stock parser",
        ),
        FormatSpec(
            "frigate",
            (".frigate",),
            "edgedet.converters.builders:build_frigate",
            "onnx",
            "export",
            ("fp32", "fp16"),
            description="Frigate NVR folder <out>/<name>-frigate/{frigate.yml,labelmap.txt,model}: openvino (ssd) or "
            "onnx (yolonas) detector",
        ),
        FormatSpec(
            "triton",
            (".pbtxt",),
            "edgedet.converters.builders:build_triton",
            "tritonclient",
            "triton",
            ("fp32", "fp16"),
            description="Triton model repository <repo>/<name>/{config.pbtxt,labels.txt,1/}",
        ),
    )
}

BACKENDS: dict[str, BackendSpec] = {
    b.name: b
    for b in (
        BackendSpec(
            "onnxruntime",
            "edgedet.runtimes.onnxruntime_runner:OnnxRuntimeRunner",
            "onnxruntime",
            "onnxruntime",
            ("onnx",),
            ("cpu", "cuda"),
            aliases=("ort",),
            auto=True,
            run_options=_ro({"latency": {"hint": "LATENCY"}, "throughput": {"hint": "THROUGHPUT"}}),
        ),
        BackendSpec(
            "openvino",
            "edgedet.runtimes.openvino_runner:OpenVinoRunner",
            "openvino",
            "openvino",
            ("openvino", "onnx"),
            ("cpu", "gpu", "npu", "auto"),
            aliases=("ov",),
            auto=True,
            exact_options=MappingProxyType({"inference_precision": "f32"}),
            run_options=_ro({"latency": {"hint": "LATENCY"}, "throughput": {"hint": "THROUGHPUT"}}),
        ),
        BackendSpec(
            "tensorrt",
            "edgedet.runtimes.tensorrt_runner:TensorRTRunner",
            "tensorrt",
            "tensorrt",
            ("tensorrt",),
            ("cuda",),
            aliases=("trt",),
            static_check="edgedet.converters.trt_check:check_tensorrt_onnx",
        ),
        BackendSpec(
            "torch",
            "edgedet.runtimes.torch_runner:TorchRunner",
            "torch",
            "export",
            ("torch",),
            ("cpu", "cuda"),
            aliases=("pytorch",),
            exact_options=MappingProxyType({"half": False}),  # on CUDA the runner runs fp16 unless told not to
        ),
        # a client of a Triton (KServe v2) server: the device is the server's ("auto": its instance_group decides)
        BackendSpec(
            "triton",
            "edgedet.runtimes.triton_runner:TritonRunner",
            "tritonclient",
            "triton",
            ("triton",),
            ("auto",),
            aliases=("tritonclient",),
            schemes=("grpc", "http", "https"),
            description="inference on a Triton Inference Server, pre/post-processing on the client",
        ),
    )
}

_BACKEND_NAMES = {a: b.name for b in BACKENDS.values() for a in (b.name, *b.aliases)}
_BACKEND_BY_SCHEME = {s: b.name for b in BACKENDS.values() for s in b.schemes}
_FORMAT_BY_SUFFIX = {s: f.name for f in FORMATS.values() for s in f.suffixes}
# the backend an artifact runs on when none is named: the first backend whose own format it is
_DEFAULT_BACKEND: dict[str, str] = {}
for _b in BACKENDS.values():
    _DEFAULT_BACKEND.setdefault(_b.formats[0], _b.name)


def build_precisions(formats=None) -> list[str]:
    """The build precisions of the named formats (default: all), in table order without repeats."""
    rows = FORMATS.values() if formats is None else [get_format(f) for f in formats]
    return list(dict.fromkeys(p for f in rows for p in f.precisions))


def load_object(ref: str):
    """Import "package.module:attribute" and return the attribute."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def get_backend(name: "str | BackendSpec") -> BackendSpec:
    if isinstance(name, BackendSpec):
        return name
    key = _BACKEND_NAMES.get(str(name).lower().strip())
    if key is None:
        aliases = ", ".join(a for a in _BACKEND_NAMES if a not in BACKENDS)
        raise InputError(f"unknown backend '{name}'; choose one of: {', '.join(BACKENDS)} (aliases: {aliases})")
    return BACKENDS[key]


def get_format(name: "str | FormatSpec") -> FormatSpec:
    if isinstance(name, FormatSpec):
        return name
    key = str(name).lower().strip()
    if key not in FORMATS:
        raise InputError(f"unknown format '{name}'; choose one of: {', '.join(FORMATS)}")
    return FORMATS[key]


def parse_backends(value: "str | list[str]") -> list[BackendSpec]:
    """A comma list (or list) of backend names -> their specs, in order, without repeats."""
    names = value.split(",") if isinstance(value, str) else list(value)
    specs = []
    for n in names:
        if str(n).strip():
            spec = get_backend(n)
            if spec not in specs:
                specs.append(spec)
    if not specs:
        raise InputError("give at least one backend")
    return specs


def remote_backend(source) -> "BackendSpec | None":
    """The backend of a server URL source (grpc://host:port/model, http://...), or None for a local path."""
    scheme, sep, _ = str(source).partition("://")
    if not sep:
        return None
    if scheme.lower() not in _BACKEND_BY_SCHEME:
        raise InputError(f"no backend speaks {scheme}:// ; remote sources use {', '.join(_BACKEND_BY_SCHEME)}://")
    return BACKENDS[_BACKEND_BY_SCHEME[scheme.lower()]]


def format_of(path: "str | Path") -> FormatSpec:
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMAT_BY_SUFFIX:
        raise ArtifactError(
            f"cannot tell the format of '{Path(path).name}': known artifact suffixes are "
            f"{', '.join(sorted(_FORMAT_BY_SUFFIX))}"
        )
    return FORMATS[_FORMAT_BY_SUFFIX[suffix]]


def format_backend(fmt: FormatSpec) -> BackendSpec:
    if fmt.name not in _DEFAULT_BACKEND:
        raise ArtifactError(
            f"no backend here runs the {fmt.name} format ({fmt.description}): serve it with its "
            "server, or load the artifact inside it"
        )
    return BACKENDS[_DEFAULT_BACKEND[fmt.name]]


def backend_for(path: "str | Path", backend: "str | BackendSpec | None" = None) -> BackendSpec:
    """The backend that runs an artifact: the named one (checked against the artifact's format), or the
    format's default."""
    fmt = format_of(path)
    if backend is None:
        return format_backend(fmt)
    spec = get_backend(backend)
    if fmt.name not in spec.formats:
        raise ArtifactError(
            f"backend '{spec.name}' cannot run '{Path(path).name}' ({fmt.name} format); it runs "
            f"{', '.join(spec.formats)}"
        )
    return spec
