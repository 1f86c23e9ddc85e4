"""Frigate NVR deployment folder: a model Frigate's detectors read unchanged, its labelmap, and the `detectors:` /
`model:` block to paste into Frigate's config.

The contract, from Frigate's code (frigate/detectors/plugins/openvino.py and onnx.py, detector_config.py,
object_detection/base.py):
- Frigate hands the detector one (1, height, width, 3) uint8 frame region (input_tensor nhwc, input_dtype int) in
  the model's pixel format; we take BGR (input_pixel_format bgr) and normalise in the graph (input form u8_bgr).
- OpenVINO detector, model_type `ssd`: exactly one input and one output of shape [1, 1, N, 7]; it reads the first
  20 rows as (image id, label, score, x_min, y_min, x_max, y_max), normalised. That is the OpenVINO DetectionOutput
  convention (our `ssd` form), which OpenVINO model_api reads too: one IR serves both.
- ONNX detector: it has no `ssd` branch; of its post-NMS conventions `yolonas` (flat [N, 7] rows of batch index,
  x_min, y_min, x_max, y_max in pixels, score, class; it stops at class < 0) fits an NMS'd EfficientDet as is
  (our `yolonas` form). yolo-generic / yolox / rfdetr / dfine would hand Frigate raw heads to decode its own way.
- Rows are best first: Frigate stops at the first score under its threshold.
- The labelmap is one name per line, line i = class i (frigate.util.builtin.load_labels).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from edgedet.errors import ConversionError
from edgedet.fileio import publish_folder
from edgedet.manifest import Manifest

from .consumer import check_classes

LABELMAP_NAME = "labelmap.txt"
CONFIG_NAME = "frigate.yml"
MODEL_ROOT = "/config/model_cache/edgedet"  # where the block says the folder is mounted in Frigate's container
MAX_CLASSES = 2**24  # the ssd and yolonas forms carry class ids as float32: exact up to 2^24


@dataclass(frozen=True)
class FrigateDetector:
    """One of our backends as a Frigate detector type: its `type`, device, model_type and our output form."""

    type: str
    device: str
    model_type: str
    output_form: str


DETECTORS = {
    "openvino": FrigateDetector("openvino", "CPU", "ssd", "ssd"),
    "onnxruntime": FrigateDetector("onnx", "CPU", "yolonas", "yolonas"),
}
INPUT = {"input_tensor": "nhwc", "input_pixel_format": "bgr", "input_dtype": "int"}


def config_block(m: Manifest, model_file: str, detector: FrigateDetector, root: str = MODEL_ROOT) -> str:
    h, w = m.image_size
    lines = [
        f"# Frigate config for {m.model['name']}, written by edgedet: copy this folder to {root}",
        "detectors:",
        "  edgedet:",
        f"    type: {detector.type}",
        f"    device: {detector.device}",
        "model:",
        f"  path: {root}/{model_file}",
        f"  labelmap_path: {root}/{LABELMAP_NAME}",
        f"  width: {w}",
        f"  height: {h}",
        *(f"  {k}: {v}" for k, v in INPUT.items()),
        f"  model_type: {detector.model_type}",
        "",
    ]
    return "\n".join(lines)


def write_frigate(inner: Path, folder: Path, backend: str) -> Path:
    """Lay out the folder from the built model (the detector's output form, u8 BGR input, batch 1)."""
    detector = DETECTORS[backend]
    m = Manifest.read(inner)
    form = (m.postprocess.output_form, m.input.dtype, m.input.layout, m.input.color, int(m.batch.max))
    if form != (detector.output_form, "uint8", "NHWC", "BGR", 1):
        raise ConversionError(f"{inner.name} is not a batch-1 {detector.output_form} model of uint8 NHWC BGR input")
    check_classes(m.class_names, f"Frigate ({LABELMAP_NAME})", MAX_CLASSES)
    with publish_folder(folder) as tmp:
        target = tmp / inner.name
        for src in [inner] + [inner.with_name(f) for f in m.artifact.extra_files]:
            shutil.copyfile(src, tmp / src.name)
        m.derive(extra={"consumer": f"frigate {detector.type} {detector.model_type}"}).write(target)
        (tmp / LABELMAP_NAME).write_text("\n".join(m.class_names) + "\n")
        (tmp / CONFIG_NAME).write_text(config_block(m, inner.name, detector))
    return folder / CONFIG_NAME
