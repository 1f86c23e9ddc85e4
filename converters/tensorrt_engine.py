"""ONNX -> TensorRT engine (a plain serialized plan, loadable by trtexec), TensorRT 8.6 to 11.x.

- named-tensor API: build_serialized_network; one optimisation profile (min/opt/max batch) for dynamic batch;
- timing cache file reused across builds; workspace limit; builder optimisation level; optional DLA core
  with GPU fallback (Jetson);
- FP16: the ONNX itself is FP16 (export --precision fp16). TensorRT 11 builds strongly typed networks only;
  on 8.6-10 the FP16 flag is set as well. INT8: the symmetric Q/DQ ONNX from `edgedet calibrate` (explicit
  quantization; the INT8 flag is set on < 10, where Q/DQ needs it).
TensorRT is imported only when a build runs: this module imports cleanly without it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgedet.errors import ConversionError, InputError
from edgedet.fileio import atomic_path, publish
from edgedet.manifest import BatchSection, Manifest
from edgedet.tensorrt_lib import import_tensorrt, trt_major


@dataclass
class EngineOptions:
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 1
    workspace_mb: int = 2048
    optimization_level: int = 3          # 0..5 (TensorRT >= 8.6)
    timing_cache: str | None = None      # file reused and updated across builds
    dla_core: int | None = None          # Jetson DLA, with GPU fallback
    strongly_typed: bool | None = None   # default: True on TensorRT >= 11 (the only mode there)
    device: str | None = None            # cuda / cuda:N: the GPU the engine is built for

    def validate(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise InputError(f"batch profile must satisfy 1 <= min <= opt <= max, got "
                             f"{self.min_batch}/{self.opt_batch}/{self.max_batch}")
        if not 0 <= self.optimization_level <= 5:
            raise InputError("optimization level must be 0..5")


def build_engine(onnx_path: str | Path, engine_path: str | Path, options: EngineOptions | None = None) -> Path:
    from edgedet.cuda import device_properties
    from edgedet.devices import parse_device

    trt = import_tensorrt()
    opts = options or EngineOptions()
    opts.validate()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    src = Manifest.read(onnx_path)
    major = trt_major(trt)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    strongly_typed = major >= 11 if opts.strongly_typed is None else opts.strongly_typed
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

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts.workspace_mb << 20)
    if hasattr(config, "builder_optimization_level"):
        config.builder_optimization_level = opts.optimization_level
    if not strongly_typed:
        if src.precision == "fp16" or src.precision == "int8":
            config.set_flag(trt.BuilderFlag.FP16)
        if src.precision == "int8" and major < 10:
            config.set_flag(trt.BuilderFlag.INT8)
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
        raise InputError(f"{onnx_path.name} has a static batch of {inp.shape[0]}; export it with --batch dynamic "
                         f"for a profile up to {opts.max_batch}")

    cache = None
    if opts.timing_cache:
        blob = Path(opts.timing_cache).read_bytes() if Path(opts.timing_cache).is_file() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, ignore_mismatch=False)

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ConversionError(f"TensorRT failed to build an engine from {onnx_path.name} (see the log above)")
    if cache is not None:
        with atomic_path(Path(opts.timing_cache)) as tmp:
            Path(tmp).write_bytes(memoryview(config.get_timing_cache().serialize()))

    device = device_properties(parse_device(opts.device, default="cuda").ordinal)
    dynamic = inp.shape[0] == -1
    static = int(inp.shape[0])
    manifest = src.derive(
        batch=BatchSection(dynamic=dynamic, min=opts.min_batch if dynamic else static,
                           opt=opts.opt_batch if dynamic else static, max=opts.max_batch if dynamic else static),
        device={**device, "tensorrt": trt.__version__, "dla_core": opts.dla_core},
        tools={"tensorrt": trt.__version__},
        extra={"source_onnx_sha256": src.artifact.sha256, "strongly_typed": strongly_typed,
               "optimization_level": opts.optimization_level, "workspace_mb": opts.workspace_mb})
    with publish(engine_path) as tmp:
        Path(tmp).write_bytes(memoryview(plan))
        manifest.write(tmp)
    return engine_path


def trtexec_command(onnx_path: str | Path, engine_path: str | Path, precision: str, input_name: str,
                    input_shape: list, options: EngineOptions) -> list[str]:
    """The equivalent `trtexec` build, for machines with TensorRT's tools but not its Python bindings
    (e.g. a JetPack image without python3-libnvinfer). The engine it writes has no manifest; load it with
    `Detector.load(engine, verify=False)` after copying the ONNX manifest beside it, or rebuild with edgedet."""
    cmd = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine_path}",
           f"--memPoolSize=workspace:{options.workspace_mb}M", f"--builderOptimizationLevel={options.optimization_level}"]
    if precision in ("fp16", "int8"):
        cmd.append("--stronglyTyped" if options.strongly_typed else "--fp16")
    if precision == "int8" and not options.strongly_typed:
        cmd.append("--int8")
    if input_shape and not isinstance(input_shape[0], int):
        rest = "x".join(str(d) for d in input_shape[1:])
        cmd += [f"--minShapes={input_name}:{options.min_batch}x{rest}",
                f"--optShapes={input_name}:{options.opt_batch}x{rest}",
                f"--maxShapes={input_name}:{options.max_batch}x{rest}"]
    if options.timing_cache:
        cmd.append(f"--timingCacheFile={options.timing_cache}")
    if options.dla_core is not None:
        cmd += [f"--useDLACore={options.dla_core}", "--allowGPUFallback"]
    return cmd


def trtexec_line(onnx_path: Path, engine_path: Path, options: dict) -> str:
    """The trtexec command that builds the same engine (for `edgedet build` where TensorRT's Python
    bindings are absent)."""
    import shlex

    from .builders import engine_options
    m = Manifest.read(onnx_path)
    cmd = trtexec_command(onnx_path, engine_path, m.precision, m.input.name, m.input.shape,
                          engine_options(onnx_path, options))
    return " ".join(shlex.quote(c) for c in cmd)
