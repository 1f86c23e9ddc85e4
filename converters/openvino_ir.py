"""ONNX -> OpenVINO IR (.xml + .bin): FP32 (compress_to_fp16=False) or FP16 weights, optional u8 BGR input.

With `u8_bgr_input=True` a PrePostProcessor step is baked into the IR: it takes uint8 NHWC BGR frames
(what OpenCV and cameras produce), converts to RGB float, normalises and transposes on the device,
so the host only letterboxes.
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


def convert_to_openvino(
    onnx_path: str | Path, out_xml: str | Path, precision: str = "fp32", u8_bgr_input: bool = False
) -> Path:
    if precision not in ("fp32", "fp16"):
        raise InputError(
            f"OpenVINO IR precision must be fp32 or fp16 (INT8 comes from 'edgedet calibrate'), got {precision!r}"
        )
    ov = _ov()
    onnx_path, out_xml = Path(onnx_path), Path(out_xml)
    src = Manifest.read(onnx_path)
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
    save_ir(model, out_xml, manifest, compress_to_fp16=(precision == "fp16"))
    return out_xml


def save_ir(model, out_xml: Path, manifest: Manifest, compress_to_fp16: bool) -> None:
    """Save .xml + .bin + manifest together (edgedet.fileio.publish): an old IR stays intact until the new one
    is complete."""
    ov = _ov()
    try:
        with publish(out_xml) as tmp:
            ov.save_model(model, str(tmp), compress_to_fp16=compress_to_fp16)
            manifest.write(tmp)
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
