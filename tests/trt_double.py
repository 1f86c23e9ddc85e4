"""A builder/runtime double of the `tensorrt` module, per version (8.6, 10.x, 11.x), that records what edgedet's
TensorRT code asks for: network creation flags, builder flags, layer precisions and output types, DLA settings,
profiles, timing-cache traffic, and the CUDA device current when the Builder is created.

Only the names the real module of that version has exist here (typecheck/trt_names.json: 11 has no FP16/INT8/
OBEY_PRECISION_CONSTRAINTS flags, no EXPLICIT_BATCH and no ILayer.precision), so code that uses a removed name on a
version fails here as it would there. `network_layers` describes what the "parser" puts in the network.
"""

from __future__ import annotations

import json
import types
from dataclasses import dataclass, field

import numpy as np


class _Enum:
    def __init__(self, *names):
        for i, n in enumerate(names):
            setattr(self, n, _Member(n, i))


@dataclass(frozen=True)
class _Member:
    name: str
    value: int

    def __int__(self):
        return self.value


@dataclass
class Tensor:
    name: str
    dtype: object
    shape: tuple = ()
    is_shape_tensor: bool = False

    @property
    def is_execution_tensor(self) -> bool:
        return not self.is_shape_tensor


@dataclass
class Layer:
    name: str
    type: object
    inputs: list
    outputs: list
    precision_set: object = None
    output_types: dict = field(default_factory=dict)

    @property
    def num_inputs(self):
        return len(self.inputs)

    @property
    def num_outputs(self):
        return len(self.outputs)

    def get_input(self, i):
        return self.inputs[i]

    def get_output(self, i):
        return self.outputs[i]


class WeakLayer(Layer):
    """ILayer of 8.6/10: precision and output types can be set."""

    @property
    def precision(self):
        return self.precision_set

    @precision.setter
    def precision(self, value):
        self.precision_set = value

    def set_output_type(self, i, dtype):
        self.output_types[i] = dtype


def make_trt(version: str, layers=None, input_shape=(1, 3, 128, 128), cuda_device=lambda: None):
    """A fake `tensorrt` module of `version`. `layers(trt)` -> list of Layer for the parsed network;
    `cuda_device()` -> the device current now (recorded when the Builder is created)."""
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.log = []  # what was asked, in order
    for name in ("float32", "float16", "int32", "int64", "int8", "bool"):
        setattr(trt, name, _Member(name, 0))
    trt.nptype = lambda dt: {"float32": np.float32, "float16": np.float16, "int32": np.int32, "int64": np.int64}[
        dt.name
    ]
    trt.LayerType = _Enum(
        "ACTIVATION", "CONSTANT", "SHAPE", "CAST", "IDENTITY", "GATHER", "TOPK", "NMS", "NON_ZERO", "ASSERTION",
        "CONDITION", "ELEMENTWISE", "UNARY", "SLICE", "SHUFFLE", "CONCATENATION", "CONVOLUTION", "SELECT", "REDUCE",
    )  # fmt: skip
    creation = ["STRONGLY_TYPED"] if major >= 10 else []
    creation += ["EXPLICIT_BATCH"] if major < 11 else []
    trt.NetworkDefinitionCreationFlag = _Enum(*creation)
    flags = ["GPU_FALLBACK", "DIRECT_IO", "TF32"]
    flags += ["FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS"] if major < 11 else []
    trt.BuilderFlag = _Enum(*flags)
    trt.DeviceType = _Enum("GPU", "DLA")
    trt.MemoryPoolType = _Enum("WORKSPACE")
    trt.TensorIOMode = _Enum("NONE", "INPUT", "OUTPUT")
    layer_cls = WeakLayer if major < 11 else Layer

    class Logger:
        WARNING = "WARNING"

        def __init__(self, severity):
            trt.log.append(("Logger", severity))
            self.min_severity = severity

    class TimingCache:
        def __init__(self, entries):
            self.entries = set(entries)

        def combine(self, other, ignore_mismatch):
            trt.log.append(("combine", sorted(other.entries)))
            self.entries |= other.entries
            return True

        def serialize(self):
            return json.dumps(sorted(self.entries)).encode()

    class Config:
        def __init__(self):
            self.flags, self.profiles, self.pool, self.cache = set(), [], {}, None
            self.default_device_type, self.DLA_core, self.builder_optimization_level = trt.DeviceType.GPU, -1, 3

        def set_memory_pool_limit(self, pool, size):
            self.pool[pool.name] = size

        def set_flag(self, flag):
            self.flags.add(flag.name)

        def add_optimization_profile(self, profile):
            self.profiles.append(profile)

        def create_timing_cache(self, blob):
            return TimingCache(json.loads(bytes(blob).decode()) if blob else [])

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache
            return True

        def get_timing_cache(self):
            return self.cache

    class Profile:
        def set_shape(self, name, lo, opt, hi):
            self.shapes = {name: (lo, opt, hi)}

    class Network:
        def __init__(self, flags):
            self.flags = flags
            self.layers = (layers or default_layers)(trt)
            self.inputs = [Tensor("images", trt.float32, tuple(input_shape))]

        @property
        def num_layers(self):
            return len(self.layers)

        def get_layer(self, i):
            return self.layers[i]

        def get_input(self, i):
            return self.inputs[i]

    class OnnxParser:
        num_errors = 0

        def __init__(self, network, logger):
            trt.log.append(("OnnxParser", id(logger)))

        def parse_from_file(self, path):
            return True

    class Builder:
        def __init__(self, logger):
            trt.log.append(("Builder", id(logger), cuda_device()))
            trt.builder = self

        def create_network(self, flags):
            self.network = Network(flags)
            trt.log.append(("create_network", flags))
            return self.network

        def create_builder_config(self):
            self.config = Config()
            return self.config

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            trt.log.append(("build", sorted(config.flags)))
            if config.cache is not None:
                config.cache.entries.add(f"tactic-{len(trt.log)}-{id(self)}")  # the timings this build measured
            return b"plan"

    trt.Logger, trt.Builder, trt.OnnxParser = Logger, Builder, OnnxParser
    trt.Layer, trt.layer_cls = Layer, layer_cls
    return trt


def default_layers(trt):
    """What an EfficientDet ONNX with in-graph post-processing parses into (abridged): backbone layers, then
    post-processing layers of every kind that trips FP32 pinning."""
    f32, f16, i32, b = trt.float32, trt.float16, trt.int32, trt.bool
    L, T, LT = trt.layer_cls, Tensor, trt.LayerType
    return [
        L("backbone/conv", LT.CONVOLUTION, [T("x", f16)], [T("c", f16)]),
        L("pp_node_pp_logits_f", LT.CAST, [T("c", f16)], [T("lf", f32)]),
        L("pp_node_pp_sigmoid", LT.ACTIVATION, [T("lf", f32)], [T("s", f32)]),
        L("pp_node_pp_decode_mul", LT.ELEMENTWISE, [T("s", f32), T("a", f32)], [T("d", f32)]),
        L("pp_anchors", LT.CONSTANT, [], [T("a", f32)]),
        L("pp_k", LT.CONSTANT, [], [T("k", i32, (), True)]),
        L("pp_node_pp_shape", LT.SHAPE, [T("d", f32)], [T("shp", i32, (3,), True)]),
        L("pp_node_pp_bn", LT.SLICE, [T("shp", i32, (3,), True)], [T("bn", i32, (2,), True)]),
        L("pp_node_pp_topk", LT.TOPK, [T("s", f32), T("k", i32, (), True)], [T("v", f32), T("idx", i32)]),
        L("pp_node_pp_gather", LT.GATHER, [T("d", f32), T("idx", i32)], [T("g", f32)]),
        L("pp_node_pp_cls", LT.ELEMENTWISE, [T("idx", i32), T("nc", i32)], [T("cls", i32)]),
        L("pp_node_pp_eq", LT.ELEMENTWISE, [T("cls", i32), T("c2", i32)], [T("eq", b)]),
        L("pp_node_pp_where", LT.SELECT, [T("eq", b), T("g", f32), T("z", f32)], [T("w", f32)]),
        L("pp_node_pp_nms", LT.NMS, [T("w", f32), T("v", f32)], [T("sel", i32)]),
        L("pp_node_pp_castidx", LT.CAST, [T("sel", i32)], [T("self", f32)]),
        L("pp_node_pp_boxes_clip", LT.ELEMENTWISE, [T("g", f32), T("lim", f32)], [T("boxes", f32)]),
    ]


PINNABLE = {"pp_node_pp_sigmoid", "pp_node_pp_decode_mul", "pp_node_pp_boxes_clip"}  # float in, float out


# ---------------------------------------------------------------------------------------------- runtime side
class Engine:
    """An ICudaEngine double with one input `images` (profile min..max on the batch) and one output `out` of the
    same shape; `kernel(stream, addresses, shape)` does the work execute_async_v3 enqueues."""

    def __init__(self, trt, kernel, profile=(1, 4), chw=(3, 8, 8), dtype="float32"):
        self.trt, self.kernel, self.profile, self.chw = trt, kernel, profile, chw
        self.dtype = getattr(trt, dtype)
        self.contexts = []

    num_io_tensors = 2

    def get_tensor_name(self, i):
        return ("images", "out")[i]

    def get_tensor_mode(self, name):
        return self.trt.TensorIOMode.INPUT if name == "images" else self.trt.TensorIOMode.OUTPUT

    def get_tensor_shape(self, name):
        return (-1, *self.chw)

    def get_tensor_dtype(self, name):
        return self.dtype

    def get_tensor_profile_shape(self, name, profile):
        lo, hi = self.profile
        return (lo, *self.chw), (lo, *self.chw), (hi, *self.chw)

    def create_execution_context(self):
        ctx = Context(self)
        self.contexts.append(ctx)
        return ctx


class Context:
    def __init__(self, engine):
        self.engine, self.shape, self.addresses, self.runs = engine, None, {}, 0
        self.refuse_shape = self.refuse_address = self.fail_in_capture = False
        self.capturing = lambda: False

    def set_input_shape(self, name, shape):
        if self.refuse_shape:
            return False
        self.shape = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        return self.shape

    def set_tensor_address(self, name, ptr):
        if self.refuse_address:
            return False
        self.addresses[name] = ptr
        return True

    def execute_async_v3(self, stream):
        if self.fail_in_capture and self.capturing():
            return False
        self.runs += 1
        self.engine.kernel(stream, self.addresses, self.shape)
        return True


def add_runtime(trt, engine_factory):
    """trt.Runtime: records the logger, and the DLA core set before deserialization."""

    class Runtime:
        def __init__(self, logger):
            trt.log.append(("Runtime", id(logger)))
            self.DLA_core = -1

        def deserialize_cuda_engine(self, blob):
            trt.log.append(("deserialize", self.DLA_core))
            trt.engine = engine_factory(trt)
            return trt.engine

    trt.Runtime = Runtime
    return trt
