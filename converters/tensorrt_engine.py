"""ONNX -> TensorRT engine (a plain serialized plan, loadable by trtexec), TensorRT 8.6 to 11.x.

build_engine = network (parse) -> config (precision mode, workspace, profile, DLA, timing cache) -> engine
(build_serialized_network) -> save (engine and manifest first, then the timing cache).

Precision: the ONNX carries its own precision (FP16 casts from `export --precision fp16`, Q/DQ from
`edgedet calibrate`). On TensorRT >= 10 the network is built *strongly typed*: TensorRT runs each layer in the
type the ONNX gives it, so FP32 post-processing stays FP32 and Q/DQ INT8 needs no builder flag (the FP16/INT8
flags are deprecated in 10.12 and gone in 11). On 8.6 the network is weakly typed: the FP16 flag (and the INT8
flag for Q/DQ) is set, and the post-processing layers (names pp_*) are pinned to FP32 with precision
constraints. DLA (Jetson) exists up to TensorRT 10.7 and needs an FP16 or INT8 network.
TensorRT is imported only when a build runs: this module imports cleanly without it (the module-level import
is for mypy only; see edgedet.tensorrt_lib).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgedet.errors import ConversionError, InputError
from edgedet.fileio import atomic_path, publish
from edgedet.manifest import BatchSection, Manifest
from edgedet.tensorrt_lib import import_tensorrt, trt_major

if TYPE_CHECKING:
    import tensorrt as trt

DLA_LAST_VERSION = (10, 7)  # DLA is not in TensorRT releases after 10.7
STRONGLY_TYPED_FROM = 10  # build strongly typed from this major on
POSTPROCESS_PREFIX = "pp_"  # layer names of the in-graph post-processing (converters/onnx_postprocess.py)


def _version_tuple(version: str) -> tuple[int, int]:
    parts = (version.split(".") + ["0"])[:2]
    return int(parts[0]), int(parts[1])


@dataclass
class EngineOptions:
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 1
    workspace_mb: int = 2048
    optimization_level: int = 3  # 0..5 (TensorRT >= 8.6)
    timing_cache: str | None = None  # file reused and updated across builds
    dla_core: int | None = None  # Jetson DLA, with GPU fallback (TensorRT <= 10.7)
    strongly_typed: bool | None = None  # default: True from TensorRT 10 (the only mode in 11)
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
        strongly = major >= STRONGLY_TYPED_FROM if self.strongly_typed is None else self.strongly_typed
        if major >= 11 and not strongly:
            raise InputError(f"TensorRT {trt_version} builds strongly typed networks only: drop strongly_typed=False")
        if strongly and major < STRONGLY_TYPED_FROM:
            raise InputError(
                f"TensorRT {trt_version} has no strongly typed networks (from 10 on): drop strongly_typed=True"
            )
        if self.dla_core is not None:
            if _version_tuple(trt_version) > DLA_LAST_VERSION:
                raise InputError(
                    f"DLA is not supported by TensorRT {trt_version} (last in "
                    f"{'.'.join(map(str, DLA_LAST_VERSION))}); use JetPack's TensorRT <= 10.7 on Orin"
                )
            if precision == "fp32":
                raise InputError(
                    "DLA runs FP16 or INT8 layers only: an FP32 ONNX would run nothing on DLA; "
                    "export with --precision fp16 or use calibrate's INT8 Q/DQ ONNX"
                )
        return strongly


def _network(
    builder: trt.Builder, onnx_path: Path, strongly_typed: bool, major: int, logger: trt.ILogger
) -> tuple[trt.INetworkDefinition, trt.OnnxParser]:
    import tensorrt as trt

    flags = 0
    if major < 10:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ConversionError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    return network, parser


def _pin_postprocess_fp32(network: trt.INetworkDefinition) -> int:
    """Weakly typed (8.6): keep the post-processing layers in FP32 so FP16 never reaches decode or NMS."""
    import tensorrt as trt

    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.name.startswith(POSTPROCESS_PREFIX) or f"/{POSTPROCESS_PREFIX}" in layer.name:
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                if layer.get_output(j).dtype == trt.float16:
                    layer.set_output_type(j, trt.float32)
            pinned += 1
    return pinned


def _config(
    builder: trt.Builder, network: trt.INetworkDefinition, opts: EngineOptions, precision: str, strongly_typed: bool
) -> trt.IBuilderConfig:
    import tensorrt as trt

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts.workspace_mb << 20)
    config.builder_optimization_level = opts.optimization_level
    if not strongly_typed:  # TensorRT 8.6-10 weakly typed: flags, FP32 post-processing
        if precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
        if _pin_postprocess_fp32(network):
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
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
    cache = None
    if opts.timing_cache:
        blob = Path(opts.timing_cache).read_bytes() if Path(opts.timing_cache).is_file() else b""
        cache = config.create_timing_cache(blob)
        if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
            raise ConversionError(
                f"TensorRT refused the timing cache {opts.timing_cache} (another TensorRT or "
                "GPU?): delete it or pass another --timing-cache"
            )
    return config


def _save_timing_cache(config: trt.IBuilderConfig, path: str) -> None:
    """After the engine is safe on disk: a failure here never loses the engine."""
    cache = config.get_timing_cache()
    if cache is None:
        import warnings

        warnings.warn(f"TensorRT returned no timing cache; {path} not updated", stacklevel=3)
        return
    with atomic_path(Path(path)) as tmp:
        Path(tmp).write_bytes(memoryview(cache.serialize()))


def build_engine(onnx_path: str | Path, engine_path: str | Path, options: EngineOptions | None = None) -> Path:
    from edgedet.cuda import device_properties
    from edgedet.devices import parse_device

    import_tensorrt()
    import tensorrt as trt

    opts = options or EngineOptions()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    src = Manifest.read(onnx_path)
    assert src.artifact is not None  # Manifest.read verified it
    strongly_typed = opts.resolve(trt.__version__, src.precision)
    # the device first: a driver that cannot run this CUDA fails here, before a long build
    device = device_properties(parse_device(opts.device, default="cuda").ordinal)
    major = trt_major(trt)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _network(builder, onnx_path, strongly_typed, major, logger)
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
        cmd.append("--stronglyTyped")  # the ONNX's own FP16 casts and Q/DQ decide the precision
    else:
        cmd += {"fp16": ["--fp16"], "int8": ["--int8"], "fp32": []}[precision]
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
    """The trtexec command that builds the same engine (for `edgedet build` where TensorRT's Python
    bindings are absent)."""
    import shlex

    m = Manifest.read(onnx_path)
    opts = engine_options(onnx_path, options)
    line = " ".join(
        shlex.quote(c) for c in trtexec_command(onnx_path, engine_path, m.precision, m.input.name, m.input.shape, opts)
    )
    if m.precision != "fp32" and opts.dla_core is None:
        old = " ".join(
            shlex.quote(c)
            for c in trtexec_command(
                onnx_path, engine_path, m.precision, m.input.name, m.input.shape, opts, trt_version="8.6"
            )
        )
        line += f"\n  TensorRT 8.6 (JetPack 5/6.0, weakly typed):\n  {old}"
    return line
