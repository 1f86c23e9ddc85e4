"""ONNX -> OpenVINO IR (.xml + .bin): FP32 (compress_to_fp16=False) or FP16 weights, optional u8 BGR input.

With `u8_bgr_input=True` a PrePostProcessor step is baked into the IR: it takes uint8 NHWC BGR frames
(what OpenCV and cameras produce), converts to RGB float, normalises and transposes on the device,
so the host only letterboxes.

With `model_api=True` the IR's rt_info carries OpenVINO model_api's `model_info` (MODEL_API_FORMS: the ssd output
form, pixel input with normalisation in the graph), so `model_api.models.Model.create_model(xml)` runs it with
model_api's own SSD wrapper: model_api letterboxes the BGR image itself (fit_to_window: scale to fit, pad bottom and
right with pad_value 0 = black), reverses it to RGB and feeds the pixels; the graph normalises. edgedet's Detector
feeds that artifact the same pixels (float input with in-graph normalisation: black padding).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgedet.errors import BackendUnavailableError, ConversionError, InputError
from edgedet.fileio import publish
from edgedet.manifest import Manifest, tool_versions


def _ov():
    try:
        import openvino as ov
    except ImportError as e:
        raise BackendUnavailableError("openvino", "openvino", e) from e
    return ov


# the ONNX graph options an IR for model_api needs (converters/builders.py GRAPH_OPTIONS)
MODEL_API_FORMS = {"output_form": "ssd", "input_form": "pixels"}


def model_info(m: Manifest, confidence_threshold: float) -> dict:
    """model_api's rt_info model_info for an edgedet IR in MODEL_API_FORMS (keys: model_api.models.parameters)."""
    return {
        "model_type": "SSD",
        "labels": " ".join(n.replace(" ", "_") for n in m.class_names),  # model_api splits labels on spaces
        "resize_type": "fit_to_window",  # keep aspect, pad bottom/right: edgedet's letterbox
        "interpolation_mode": "LINEAR",
        "pad_value": "0",
        "reverse_input_channels": "True",  # model_api hands BGR frames; the graph takes RGB
        "confidence_threshold": str(confidence_threshold),
        "iou_threshold": str(m.postprocess.iou_threshold),
        "nms_execute": "False",  # NMS is in the graph
    }


def convert_to_openvino(
    onnx_path: str | Path,
    out_xml: str | Path,
    precision: str = "fp32",
    u8_bgr_input: bool = False,
    model_api: bool = False,
    confidence_threshold: float = 0.25,
) -> Path:
    if precision not in ("fp32", "fp16"):
        raise InputError(
            f"OpenVINO IR precision must be fp32 or fp16 (INT8 comes from 'edgedet calibrate'), got {precision!r}"
        )
    ov = _ov()
    onnx_path, out_xml = Path(onnx_path), Path(out_xml)
    src = Manifest.read(onnx_path)
    if model_api:
        _check_model_api(src, u8_bgr_input)
    try:
        model = ov.convert_model(str(onnx_path))
        if u8_bgr_input:
            model = _bake_preprocessing(ov, model, src)
    except Exception as e:
        raise ConversionError(f"OpenVINO conversion of {onnx_path.name} failed: {e}") from e
    changes = {}
    if u8_bgr_input:
        shape = list(src.input.shape)
        changes["input"] = dataclasses.replace(
            src.input,
            shape=[shape[0], shape[2], shape[3], 3],
            layout="NHWC",
            dtype="uint8",
            color="BGR",
            normalize="in_graph",
        )
    manifest = src.derive(
        precision=precision,
        tools=tool_versions("openvino"),
        extra={"source_onnx_sha256": src.artifact.sha256},
        **changes,
    )
    metadata = {"model_info": model_info(manifest, confidence_threshold)} if model_api else None
    save_ir(model, out_xml, manifest, compress_to_fp16=(precision == "fp16"), metadata=metadata)
    return out_xml


def _check_model_api(src: Manifest, u8_bgr_input: bool) -> None:
    got = {"output_form": src.postprocess.output_form if src.postprocess.in_graph else "host NMS"}
    got["input_form"] = "pixels" if (src.input.normalize, src.input.dtype) == ("in_graph", "float32") else "other"
    if got != MODEL_API_FORMS or u8_bgr_input:
        raise InputError(
            "an IR for OpenVINO model_api needs in-graph NMS in the ssd output form and pixel input "
            f"({MODEL_API_FORMS}), without u8_bgr_input; got {got}"
        )


def save_ir(model, out_xml: Path, manifest: Manifest, compress_to_fp16: bool, metadata: dict | None = None) -> None:
    """Save .xml + .bin + manifest together (edgedet.fileio.publish): an old IR stays intact until the new one
    is complete. `metadata`: more rt_info entries (model_api's model_info)."""
    ov = _ov()
    try:
        with publish(out_xml) as tmp:
            ov.save_model(model, str(tmp), compress_to_fp16=compress_to_fp16)
            manifest.write(tmp, metadata=metadata)
    except OSError as e:
        raise ConversionError(f"writing OpenVINO IR {out_xml} failed: {e}") from e


def _bake_preprocessing(ov, model, src: Manifest):
    from openvino.preprocess import ColorFormat, PrePostProcessor

    ppp = PrePostProcessor(model)
    inp = ppp.input(src.input.name)
    inp.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(ColorFormat.BGR)
    inp.model().set_layout(ov.Layout("NCHW"))
    inp.preprocess().convert_element_type(ov.Type.f32).convert_color(ColorFormat.RGB).mean(
        [m * 255.0 for m in src.input.mean]
    ).scale([s * 255.0 for s in src.input.std])
    return ppp.build()
