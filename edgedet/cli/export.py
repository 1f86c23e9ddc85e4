"""`edgedet export`: a model to ONNX, OpenVINO IR, a torch artifact, or a deployment folder for another pipeline
(Triton, DeepStream, Frigate), with its manifest (beside the file, and inside ONNX and IR files)."""

from __future__ import annotations

from pathlib import Path

from edgedet.converters.onnx_inputs import INPUT_FORMS
from edgedet.converters.triton_repo import TRITON
from edgedet.postprocess import OUTPUT_FORMS
from edgedet.registry import FORMATS, build_precisions

from .common import batch, emit, positive

HELP = (
    "export a model to ONNX, OpenVINO IR, a torch artifact, or a Triton / DeepStream / Frigate deployment folder, "
    "with its manifest"
)
# formats that run anywhere; device-specific ones (TensorRT engines) come from 'edgedet build'
EXPORT_FORMATS = [f.name for f in FORMATS.values() if not f.device_specific]


def add_arguments(p):
    p.add_argument("--model", required=True, help="model name (d0..d7x, lite0..lite4, test)")
    p.add_argument("--weights", help="effdet-layout .pth checkpoint, or 'coco' for the published one")
    p.add_argument("--num-classes", type=positive)
    p.add_argument("--imgsz", type=positive)
    p.add_argument("--batch", type=batch, default=1, help="static batch size or 'dynamic'")
    p.add_argument("--max-batch", type=positive, default=32, help="largest batch of a dynamic profile")
    p.add_argument("--postprocess", choices=["host", "graph"], default="host")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="onnx")
    p.add_argument("--precision", choices=build_precisions(EXPORT_FORMATS), default="fp32")
    p.add_argument("--u8-input", action="store_true", help="OpenVINO: bake u8 NHWC BGR input preprocessing into the IR")
    p.add_argument("--exporter", choices=["torchscript", "dynamo"], help="ONNX exporter (default torchscript)")
    p.add_argument(
        "--output-form",
        choices=list(OUTPUT_FORMS),
        help="ONNX/OpenVINO with --postprocess graph: the output layout (default edgedet; "
        + "; ".join(f"{f.name}: {f.description.split(':')[0]}" for f in OUTPUT_FORMS.values() if f.name != "edgedet")
        + ")",
    )
    p.add_argument(
        "--input-form",
        choices=list(INPUT_FORMS),
        help="ONNX/OpenVINO: the input tensor ("
        + "; ".join(f"{f.name}: {f.description}" for f in INPUT_FORMS.values())
        + ")",
    )
    p.add_argument(
        "--model-api",
        action="store_true",
        help="OpenVINO: an IR for OpenVINO model_api (rt_info model_info, ssd outputs, pixel input)",
    )
    p.add_argument(
        "--backend",
        help=f"triton: the Triton backend of the model ({', '.join(TRITON)}); frigate: openvino (ssd) or "
        "onnxruntime (Frigate's onnx detector, yolonas)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--json", action="store_true")


def run(a) -> int:
    from edgedet.converters.pipeline import BuildRequest, export_artifact
    from edgedet.manifest import manifest_path
    from edgedet.progress import spinner

    given = (
        ("u8_bgr_input", a.u8_input or None),
        ("exporter", a.exporter),
        ("backend", a.backend),
        ("output_form", a.output_form),
        ("input_form", a.input_form),
        ("model_api", a.model_api or None),
    )
    options = {k: v for k, v in given if v is not None}
    req = BuildRequest(
        model=a.model,
        format=a.format,
        precision=a.precision,
        weights=a.weights,
        num_classes=a.num_classes,
        imgsz=a.imgsz,
        batch=a.batch,
        max_batch=a.max_batch,
        postprocess=a.postprocess,
        options=options,
    )
    with spinner(f"exporting {a.model} to {a.format} ({a.precision})"):
        path = export_artifact(req, a.out)
    manifest = manifest_path(path)
    written = {"artifact": str(path), "manifest": str(manifest) if manifest.is_file() else None}
    if not manifest.is_file():  # a deployment folder (DeepStream, Frigate): its model file carries the manifest
        written["folder"] = str(Path(path).parent)
    emit(written, a.json, f"wrote {path}" + (f"\n      {manifest}" if manifest.is_file() else ""))
    return 0
