"""ONNX -> TensorRT engine (a plain serialized plan, loadable by trtexec), TensorRT 8.6 to 11.x.

build_engine = device (cudaSetDevice, as trtexec --device) -> network (parse) -> config (precision mode, workspace,
profile, DLA, timing cache) -> engine (build_serialized_network) -> save (engine and manifest first, then the
timing cache, merged into the file under a lock).

Precision: the ONNX carries its own precision (FP16 casts from `export --precision fp16`, Q/DQ plus FP16 from
`edgedet calibrate --backend trt`). From TensorRT 10 on the network is built *strongly typed*: TensorRT runs each
layer in the type the ONNX gives it, so FP32 post-processing stays FP32 and Q/DQ INT8 needs no builder flag (the
FP16/INT8 flags are deprecated in 10.12 and gone in 11). Weakly typed builds (8.6; DLA on 10.x, the mode NVIDIA
documents for DLA before 11.4.1) set the FP16 flag for FP16 and INT8 ONNX (INT8 adds the INT8 flag: the float parts
of a Q/DQ network then run in FP16, as trtexec --int8 --fp16), and pin the post-processing layers (names pp_*) that
compute in float to FP32 with precision constraints. Layers with integer, boolean or shape tensors (constants, shape
arithmetic, Cast, Gather, TopK indices, Equal, NMS) are never pinned: they have no FP32 implementation and
OBEY_PRECISION_CONSTRAINTS would fail the build (Polygraphy's `debug precision` skips the same layers).

DLA (Jetson AGX Orin): TensorRT <= 10.7 and >= 11.4.1 (JetPack 7.2.2+; NVIDIA's 11.4.1 release notes), weakly typed
before 11 and strongly typed from 11.4.1; FP16 or INT8 networks only, a static batch profile (min = opt = max), GPU
fallback on.
TensorRT is imported only when a build runs: this module imports cleanly without it (the module-level import
is for mypy only; see edgedet.tensorrt_lib).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgedet.errors import ConversionError, InputError
from edgedet.fileio import atomic_path, locked, publish
from edgedet.manifest import BatchSection, Manifest
from edgedet.tensorrt_lib import import_tensorrt, logger, trt_major

if TYPE_CHECKING:
    import tensorrt as trt

# DLA is in TensorRT up to 10.7 and again from 11.4.1 on Jetson AGX Orin (JetPack 7.2.2+); 11.0-11.4.0 have none
# on Linux (NVIDIA TensorRT 11.4.1 release notes, "Working with DLA")
DLA_RELEASES = (((0,), (10, 7, 99)), ((11, 4, 1), (99,)))
STRONGLY_TYPED_FROM = 10  # build strongly typed from this major on (GPU; DLA from 11)
POSTPROCESS_PREFIX = "pp_"  # layer names of the in-graph post-processing (converters/onnx_postprocess.py)


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = [int(p) for p in str(version).split(".")[:3] if p.isdigit()]
    return tuple(parts + [0] * (2 - len(parts))) if len(parts) < 2 else tuple(parts)


def dla_available(version: str) -> bool:
    v = _version_tuple(version)
    return any(lo <= v <= hi for lo, hi in DLA_RELEASES)


@dataclass
class EngineOptions:
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 1
    workspace_mb: int = 2048
    optimization_level: int = 3  # 0..5 (TensorRT >= 8.6)
    timing_cache: str | None = None  # file reused and updated across builds
    dla_core: int | None = None  # Jetson DLA, with GPU fallback (TensorRT <= 10.7, >= 11.4.1)
    strongly_typed: bool | None = None  # default: True from TensorRT 10 (DLA: from 11), the only mode in 11
    device: str | None = None  # cuda / cuda:N: the GPU the engine is built for

    def validate(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise InputError(
                f"batch profile must satisfy 1 <= min <= opt <= max, got "
                f"{self.min_batch}/{self.opt_batch}/{self.max_batch}"
            )
        if not 0 <= self.optimization_level <= 5:
            raise InputError("optimization level must be 0..5")

    def resolve(self, trt_version: str, precision: str) -> bool:
        """Check the options against this TensorRT and the ONNX precision; returns strongly_typed."""
        self.validate()
        major = _version_tuple(trt_version)[0]
        dla = self.dla_core is not None
        if dla:
            self._check_dla(trt_version, precision)
        default = major >= STRONGLY_TYPED_FROM and not (dla and major < 11)
        strongly = default if self.strongly_typed is None else self.strongly_typed
        if major >= 11 and not strongly:
            raise InputError(f"TensorRT {trt_version} builds strongly typed networks only: drop strongly_typed=False")
        if strongly and major < STRONGLY_TYPED_FROM:
            raise InputError(
                f"TensorRT {trt_version} has no strongly typed networks (from 10 on): drop strongly_typed=True"
            )
        if strongly and dla and major < 11:
            raise InputError(
                f"strongly typed DLA builds are documented from TensorRT 11.4.1 only; TensorRT {trt_version} builds "
                "DLA engines weakly typed (FP16/INT8 flags): drop strongly_typed=True"
            )
        return strongly

    def _check_dla(self, trt_version: str, precision: str) -> None:
        if not dla_available(trt_version):
            raise InputError(
                f"DLA is not supported by TensorRT {trt_version}: it is in TensorRT up to 10.7 (JetPack 5/6) and from "
                "11.4.1 on Jetson AGX Orin with JetPack 7.2.2 or later"
            )
        if precision == "fp32":
            raise InputError(
                "DLA runs FP16 or INT8 layers only: an FP32 ONNX would run nothing on DLA; "
                "export with --precision fp16 or use calibrate's INT8 Q/DQ ONNX"
            )
        if not self.min_batch == self.opt_batch == self.max_batch:
            raise InputError(
                f"DLA engines need one batch size (min = opt = max), got {self.min_batch}/{self.opt_batch}/"
                f"{self.max_batch}: pass --min-batch N --opt-batch N --max-batch N"
            )


def _network(
    builder: trt.Builder, onnx_path: Path, strongly_typed: bool, major: int, log: trt.ILogger
) -> tuple[trt.INetworkDefinition, trt.OnnxParser]:
    import tensorrt as trt

    flags = 0
    if major < 10:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, log)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ConversionError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    return network, parser


def _pinnable(layer: trt.ILayer) -> bool:
    """A post-processing layer that computes in float: its inputs and outputs are FP32/FP16 execution tensors and
    its type has an FP32 implementation. Constants, shape arithmetic, Cast/Identity, Gather (integer indices), TopK
    (integer indices), NMS, NonZero and anything with an integer or boolean tensor (Equal) are left alone."""
    import tensorrt as trt

    if not (layer.name.startswith(POSTPROCESS_PREFIX) or f"/{POSTPROCESS_PREFIX}" in layer.name):
        return False
    never = (
        trt.LayerType.CONSTANT,
        trt.LayerType.SHAPE,
        trt.LayerType.CAST,
        trt.LayerType.IDENTITY,
        trt.LayerType.GATHER,
        trt.LayerType.TOPK,
        trt.LayerType.NMS,
        trt.LayerType.NON_ZERO,
        trt.LayerType.ASSERTION,
        trt.LayerType.CONDITION,
    )
    if layer.type in never:
        return False
    tensors = [layer.get_input(i) for i in range(layer.num_inputs)]
    tensors += [layer.get_output(j) for j in range(layer.num_outputs)]
    return all(
        t.dtype in (trt.float32, trt.float16) and t.is_execution_tensor and not t.is_shape_tensor
        for t in tensors
        if t is not None
    )


def _pin_postprocess_fp32(network: trt.INetworkDefinition) -> int:
    """Weakly typed with FP16 enabled: keep the post-processing that computes in float in FP32, so FP16 never reaches
    decode or NMS. Returns how many layers were pinned."""
    import tensorrt as trt

    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if _pinnable(layer):
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)
            pinned += 1
    return pinned


def _weak_precision(config: trt.IBuilderConfig, network: trt.INetworkDefinition, precision: str) -> None:
    """Weakly typed (8.6, DLA on 10.x): the flags that let TensorRT use the ONNX's precision. INT8 (Q/DQ) sets FP16
    too: the layers between Q/DQ pairs then run in FP16, not FP32 (trtexec --int8 --fp16)."""
    import tensorrt as trt

    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
        if _pin_postprocess_fp32(network):
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)


def _config(
    builder: trt.Builder, network: trt.INetworkDefinition, opts: EngineOptions, precision: str, strongly_typed: bool
) -> trt.IBuilderConfig:
    import tensorrt as trt

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts.workspace_mb << 20)
    config.builder_optimization_level = opts.optimization_level
    if not strongly_typed:
        _weak_precision(config, network, precision)
    if opts.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(opts.dla_core)
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    inp = network.get_input(0)
    if inp.shape[0] == -1:
        profile = builder.create_optimization_profile()
        rest = tuple(inp.shape)[1:]
        profile.set_shape(inp.name, (opts.min_batch, *rest), (opts.opt_batch, *rest), (opts.max_batch, *rest))
        config.add_optimization_profile(profile)
    elif inp.shape[0] != opts.max_batch and opts.max_batch != 1:
        raise InputError(
            f"the ONNX has a static batch of {inp.shape[0]}; export it with --batch dynamic "
            f"for a profile up to {opts.max_batch}"
        )
    if opts.timing_cache:
        _use_timing_cache(config, opts.timing_cache)
    return config


def _lock(path: str) -> Path:
    """The lock file of a timing cache: beside it, never the cache itself (which is replaced by rename)."""
    return Path(f"{path}.lock")


def _use_timing_cache(config: trt.IBuilderConfig, path: str) -> None:
    with locked(_lock(path)):
        blob = Path(path).read_bytes() if Path(path).is_file() else b""
    cache = config.create_timing_cache(blob)
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        raise ConversionError(
            f"TensorRT refused the timing cache {path} (another TensorRT or GPU?): delete it or pass another "
            "--timing-cache"
        )


def _save_timing_cache(config: trt.IBuilderConfig, path: str) -> None:
    """After the engine is safe on disk: merge this build's timings into the file under its lock, as trtexec does
    (samples/common: updateTimingCacheFile loads the file, combines, writes), so concurrent builds sharing one
    cache lose none of each other's entries. A failure here never loses the engine."""
    import warnings

    cache = config.get_timing_cache()
    if cache is None:
        warnings.warn(f"TensorRT returned no timing cache; {path} not updated", stacklevel=3)
        return
    with locked(_lock(path)):
        blob = Path(path).read_bytes() if Path(path).is_file() else b""
        merged = config.create_timing_cache(blob)
        if merged is None or not merged.combine(cache, False):
            merged = cache  # the file's cache is from another TensorRT/GPU: this build's replaces it
            warnings.warn(f"{path} could not be merged with this build's timings: replaced", stacklevel=3)
        with atomic_path(Path(path)) as tmp:
            Path(tmp).write_bytes(memoryview(merged.serialize()))


def build_engine(onnx_path: str | Path, engine_path: str | Path, options: EngineOptions | None = None) -> Path:
    from edgedet.cuda import device_properties, use_device
    from edgedet.devices import parse_device

    import_tensorrt()
    import tensorrt as trt

    opts = options or EngineOptions()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    src = Manifest.read(onnx_path)
    assert src.artifact is not None  # Manifest.read verified it
    strongly_typed = opts.resolve(trt.__version__, src.precision)
    # the device first: a driver that cannot run this CUDA fails here, before a long build
    ordinal = parse_device(opts.device, default="cuda").ordinal
    device = device_properties(ordinal)
    major = trt_major(trt)
    with use_device(ordinal):  # TensorRT builds for the current device (trtexec --device: cudaSetDevice)
        builder = trt.Builder(logger(trt))
        network, _parser = _network(builder, onnx_path, strongly_typed, major, logger(trt))
        config = _config(builder, network, opts, src.precision, strongly_typed)
        plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ConversionError(f"TensorRT failed to build an engine from {onnx_path.name} (see the log above)")
    inp = network.get_input(0)
    dynamic, static = inp.shape[0] == -1, int(inp.shape[0])
    manifest = src.derive(
        batch=BatchSection(
            dynamic=dynamic,
            min=opts.min_batch if dynamic else static,
            opt=opts.opt_batch if dynamic else static,
            max=opts.max_batch if dynamic else static,
        ),
        device={**device, "tensorrt": trt.__version__, "dla_core": opts.dla_core},
        tools={"tensorrt": trt.__version__},
        extra={
            "source_onnx_sha256": src.artifact.sha256,
            "strongly_typed": strongly_typed,
            "optimization_level": opts.optimization_level,
            "workspace_mb": opts.workspace_mb,
        },
    )
    with publish(engine_path) as tmp:  # the engine and its manifest first ...
        Path(tmp).write_bytes(memoryview(plan))
        manifest.write(tmp)
    if opts.timing_cache:  # ... then the timing cache
        with use_device(ordinal):
            _save_timing_cache(config, opts.timing_cache)
    return engine_path


def trtexec_command(
    onnx_path: str | Path,
    engine_path: str | Path,
    precision: str,
    input_name: str,
    input_shape: list,
    options: EngineOptions,
    trt_version: str = "10.0",
) -> list[str]:
    """The equivalent `trtexec` build for a TensorRT version (default: 10 and later, strongly typed), for
    machines with TensorRT's tools but not its Python bindings. The engine it writes has no manifest; copy the
    ONNX manifest beside it and load it with `Detector.load(engine, verify=False)`, or rebuild with edgedet."""
    strongly = options.resolve(trt_version, precision)
    cmd = [
        "trtexec",
        f"--onnx={onnx_path}",
        f"--saveEngine={engine_path}",
        f"--memPoolSize=workspace:{options.workspace_mb}M",
        f"--builderOptimizationLevel={options.optimization_level}",
    ]
    if strongly:
        cmd.append("--stronglyTyped")  # the ONNX's own FP16 casts and Q/DQ decide the precision (a no-op on 11)
    else:  # weakly typed: INT8 Q/DQ with FP16 for the float parts, as _weak_precision
        cmd += {"fp16": ["--fp16"], "int8": ["--int8", "--fp16"], "fp32": []}[precision]
    if input_shape and not isinstance(input_shape[0], int):
        rest = "x".join(str(d) for d in input_shape[1:])
        cmd += [
            f"--minShapes={input_name}:{options.min_batch}x{rest}",
            f"--optShapes={input_name}:{options.opt_batch}x{rest}",
            f"--maxShapes={input_name}:{options.max_batch}x{rest}",
        ]
    if options.timing_cache:
        cmd.append(f"--timingCacheFile={options.timing_cache}")
    if options.dla_core is not None:
        cmd += [f"--useDLACore={options.dla_core}", "--allowGPUFallback"]
    return cmd


# the trtexec forms printed where TensorRT's bindings are absent: (label, a TensorRT version of that form)
TRTEXEC_FORMS = {
    "gpu": (("TensorRT 10 and 11 (strongly typed)", "10.0"), ("TensorRT 8.6 (JetPack 5/6.0, weakly typed)", "8.6")),
    "dla": (
        ("TensorRT 10.0-10.7 (JetPack 6, DLA weakly typed)", "10.3"),
        ("TensorRT 8.6 (JetPack 5/6.0, DLA)", "8.6"),
        ("TensorRT >= 11.4.1 (Jetson AGX Orin, JetPack 7.2.2+, DLA strongly typed)", "11.4.1"),
    ),
}
OPSET_86 = 17  # the newest opset TensorRT 8.6 parses (onnx-tensorrt 8.6 operators.md)


def engine_options(onnx_path: Path, options: dict) -> "EngineOptions":
    """EngineOptions for an ONNX from its manifest's batch profile and the given options."""
    batch = Manifest.read(onnx_path).batch
    opts = dict(options)
    opts.pop("precision", None)
    min_batch, max_batch = opts.pop("min_batch", None) or 1, opts.pop("max_batch", None) or batch.max
    if not batch.dynamic:
        min_batch = max_batch = batch.max
    opt_batch = (opts.pop("opt_batch", None) or min_batch) if batch.dynamic else batch.max
    opts.pop("opt_batch", None)
    return EngineOptions(min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch, **opts)


def trtexec_line(onnx_path: Path, engine_path: Path, options: dict) -> str:
    """The trtexec commands that build the same engine, one per TensorRT form (for `edgedet build` where TensorRT's
    Python bindings are absent): the first is the default; the others are labelled. The 8.6 form is left out for an
    ONNX above opset 17 (calibrate's FP16 Q/DQ form is opset 19: TensorRT >= 10 only)."""
    import shlex

    import onnx

    m = Manifest.read(onnx_path)
    opts = engine_options(onnx_path, options)
    model = onnx.load(str(onnx_path), load_external_data=False)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    forms = TRTEXEC_FORMS["dla" if opts.dla_core is not None else "gpu"]
    lines = []
    for label, version in forms:
        if version == "8.6" and opset > OPSET_86:
            continue
        cmd = trtexec_command(onnx_path, engine_path, m.precision, m.input.name, m.input.shape, opts, version)
        lines.append((label, " ".join(shlex.quote(c) for c in cmd)))
    first = lines[0][1]
    return "\n".join([first] + [f"  {label}:\n  {line}" for label, line in lines[1:]])
