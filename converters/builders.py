"""One builder per artifact format, named in edgedet.registry.FORMATS: (BuildRequest, path) -> path.

A builder declares the options it takes (OPTIONS); the pipeline checks a request's options against them.
Formats made from ONNX (OpenVINO IR, TensorRT plan) get their ONNX through the artifact cache."""

from __future__ import annotations

from pathlib import Path

from edgedet.options import Option

from .pipeline import BuildRequest, get_artifact


def declares(**options: Option):
    def deco(fn):
        fn.OPTIONS = options
        return fn

    return deco


def _create(req: BuildRequest):
    from edgedet.model import create_model

    return create_model(req.model, num_classes=req.num_classes, weights=req.weights, image_size=req.imgsz)


def _weights_info(req: BuildRequest):
    from .onnx_export import weights_info

    return weights_info(req.weights)


@declares()
def build_torch(req: BuildRequest, path: Path) -> Path:
    from .torch_artifact import save_torch_artifact

    return save_torch_artifact(_create(req), path, req.class_names, _weights_info(req), req.precision, req.max_batch)


# options of the ONNX graph itself: formats made from ONNX pass them on to the ONNX they are built from
GRAPH_OPTIONS = {
    "output_form": Option(str, "edgedet", help="in-graph output layout: edgedet, efficientnms, ssd, yolonas"),
    "input_form": Option(str, "normalized", help="input tensor: normalized, pixels (float 0..255), u8_bgr"),
}


def _graph_options(req: BuildRequest) -> dict:
    return {k: req.options[k] for k in GRAPH_OPTIONS if req.options.get(k) is not None}


@declares(
    exporter=Option(str, "torchscript", ("torchscript", "dynamo")),
    opset=Option(int, 17),
    simplify=Option(bool, True),
    **GRAPH_OPTIONS,
)
def build_onnx(req: BuildRequest, path: Path) -> Path:
    from .onnx_export import ExportOptions, export_onnx

    opts = ExportOptions(
        batch=req.batch, max_batch=req.max_batch, postprocess=req.postprocess, precision=req.precision, **req.options
    )
    return export_onnx(_create(req), path, opts, req.class_names, _weights_info(req))


def _onnx_request(req: BuildRequest, **changes) -> BuildRequest:
    return req.replace(**{"format": "onnx", "device": None, "options": _graph_options(req), **changes})


@declares(
    u8_bgr_input=Option(bool, False, help="bake u8 NHWC BGR input preprocessing into the IR"),
    model_api=Option(bool, False, help="write OpenVINO model_api's model_info into the IR's rt_info"),
    **GRAPH_OPTIONS,
)
def build_openvino(req: BuildRequest, path: Path) -> Path:
    if req.options.get("model_api"):  # model_api reads the ssd form of pixel input: the IR is made so
        from .openvino_ir import MODEL_API_FORMS

        req = req.replace(postprocess="graph", options={**req.options, **MODEL_API_FORMS})
    onnx_path = get_artifact(_onnx_request(req, precision="fp32")).path
    options = {k: v for k, v in req.options.items() if k not in GRAPH_OPTIONS}
    return openvino_from_onnx(onnx_path, path, {"precision": req.precision, **options})


def openvino_from_onnx(onnx_path: Path, path: Path, options: dict) -> Path:
    from .openvino_ir import convert_to_openvino

    return convert_to_openvino(onnx_path, path, **options)


@declares(
    workspace_mb=Option(int, 2048),
    optimization_level=Option(int, 3),
    timing_cache=Option(str),
    dla_core=Option(int),
    opt_batch=Option(int),
)
def build_tensorrt(req: BuildRequest, path: Path) -> Path:
    # FP16 engines come from an FP16 ONNX (strongly typed on TensorRT >= 10); INT8 from calibrate's Q/DQ ONNX.
    onnx_path = get_artifact(_onnx_request(req)).path
    return tensorrt_from_onnx(onnx_path, path, {"max_batch": req.max_batch, "device": req.device, **req.options})


def tensorrt_from_onnx(onnx_path: Path, path: Path, options: dict) -> Path:
    from .tensorrt_engine import build_engine, engine_options

    return build_engine(onnx_path, path, engine_options(onnx_path, options))


@declares(
    backend=Option(str, "onnxruntime", help="our backend whose format Triton serves: onnxruntime, openvino, trt"),
    instances=Option(int, 1),
    queue_delay_us=Option(int, 100),
)
def build_triton(req: BuildRequest, path: Path) -> Path:
    """`path` is `<repo>/<name>.pbtxt`: the model folder `<repo>/<name>/` is written, its config.pbtxt returned.
    The inner artifact (in-graph NMS, dynamic batch up to max_batch) comes through the cache; without TensorRT
    the tensorrt form keeps the checked ONNX and the trtexec line that builds 1/model.plan."""
    from edgedet.errors import InputError
    from edgedet.registry import get_backend, load_object

    from .triton_repo import TRITON, write_repository

    opts = dict(req.options)
    spec = get_backend(opts.pop("backend"))
    if spec.name not in TRITON:
        raise InputError(f"Triton has no backend for '{spec.name}'; choose one of {', '.join(TRITON)}")
    inner_req = req.replace(
        format=spec.build_format.name,
        postprocess="graph",
        batch="dynamic",
        options={},
        device=req.device if spec.build_format.device_specific else None,
    )
    config = path.parent / path.stem / "config.pbtxt"
    fmt = spec.build_format
    if fmt.offline_command and not spec.available():
        onnx = get_artifact(inner_req.replace(format="onnx", device=None)).path
        line = load_object(fmt.offline_command)(onnx, Path("1") / "model.plan", {"max_batch": req.max_batch})
        return write_repository(
            onnx,
            "tensorrt",
            config,
            model_file="model.onnx",
            **opts,
            offline_note="TensorRT was not installed where this repository was written. "
            "Build 1/model.plan from 1/model.onnx:\n  " + line,
        )
    return write_repository(get_artifact(inner_req).path, spec.name, config, **opts)


def _consumer_folder(path: Path, consumer: str) -> Path:
    """`<out>/<name>.<consumer>` (the FORMATS suffix) -> the folder `<out>/<name>-<consumer>/`."""
    return path.with_name(f"{path.stem}-{consumer}")


@declares(
    gpu_id=Option(int, 0, minimum=0, help="DeepStream: gpu-id of the config and its engine's name"),
    score_threshold=Option(float, 0.25, minimum=0.0, help="pre-cluster-threshold"),
)
def build_deepstream(req: BuildRequest, path: Path) -> Path:
    """A DeepStream nvinfer folder (converters/deepstream.py): the FP32 ONNX (TensorRT builds the engine in the
    requested precision), efficientnms outputs, pixel input; returns its config_infer_primary.txt."""
    from .deepstream import FORMS, write_deepstream

    inner = get_artifact(req.replace(format="onnx", precision="fp32", postprocess="graph", device=None, options=FORMS))
    return write_deepstream(
        inner.path,
        _consumer_folder(path, "deepstream"),
        req.precision,
        req.options["score_threshold"],
        req.options["gpu_id"],
    )


@declares(backend=Option(str, "openvino", ("openvino", "onnxruntime"), help="Frigate's detector: openvino or onnx"))
def build_frigate(req: BuildRequest, path: Path) -> Path:
    """A Frigate folder (converters/frigate.py): a batch-1 model of u8 BGR input in the output form of Frigate's
    model_type for the backend, its labelmap and config block; returns the block's path."""
    from edgedet.registry import get_backend

    from .frigate import DETECTORS, write_frigate

    spec = get_backend(req.options["backend"])
    detector = DETECTORS[spec.name]
    inner = get_artifact(
        req.replace(
            format=spec.build_format.name,
            postprocess="graph",
            batch=1,
            device=None,
            options={"output_form": detector.output_form, "input_form": "u8_bgr"},
        )
    )
    return write_frigate(inner.path, _consumer_folder(path, "frigate"), spec.name)
