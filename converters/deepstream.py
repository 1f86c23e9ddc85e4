"""NVIDIA DeepStream (Gst-nvinfer) deployment folder: the ONNX, labels.txt and config_infer_primary.txt, ready for
`nvinfer config-file-path=config_infer_primary.txt` with no custom library to compile.

- The ONNX takes what nvinfer hands an engine with net-scale-factor=1 and offsets 0: float32 NCHW RGB pixels
  0..255 (model-color-format=0). nvinfer's scale is one scalar, ImageNet's std is per channel: the normalisation is
  in the graph (input form `pixels`).
- Its outputs are in the `efficientnms` form, which the stock parser NvDsInferParseCustomEfficientNMS reads from
  DeepStream's prebuilt libnvds_infercustomparser.so: four outputs in order, int32 num_detections [B,1], boxes
  [B,D,4] x1 y1 x2 y2 in network pixels, scores [B,D], int32 classes [B,D]; pre-cluster-threshold is the score
  threshold it applies, num-detected-classes bounds the class ids. NMS is in the graph: cluster-mode=4 (none).
- maintain-aspect-ratio=1 with symmetric-padding=0: scale to fit and pad right and bottom, edgedet's letterbox.
  nvinfer pads with black; edgedet's Detector feeds this artifact black padding too (float input with in-graph
  normalisation), so `edgedet detect/eval` on the exported ONNX see what DeepStream sees.
- network-mode from the precision (fp32 0, fp16 2), batch-size from the batch, and model-engine-file named as
  nvinfer names the engine it builds (<onnx>_b<batch>_gpu<id>_<precision>.engine), so the first run's engine is
  reused by the next.

The written config is validated against the keys and value types of Gst-nvinfer's documentation, kept as data
(converters/data/nvinfer_config_schema.json).
"""

from __future__ import annotations

import configparser
import json
import re
import shutil
from functools import lru_cache
from pathlib import Path

from edgedet.errors import ConversionError
from edgedet.fileio import publish_folder
from edgedet.manifest import Manifest

from .consumer import check_classes

CONFIG_NAME = "config_infer_primary.txt"
LABELS_NAME = "labels.txt"
STOCK_PARSER = "NvDsInferParseCustomEfficientNMS"
STOCK_PARSER_LIBRARY = "/opt/nvidia/deepstream/deepstream/lib/libnvds_infercustomparser.so"
NETWORK_MODE = {"fp32": 0, "int8": 1, "fp16": 2}  # Gst-nvinfer network-mode
FORMS = {"output_form": "efficientnms", "input_form": "pixels"}  # the ONNX graph options this folder needs
MAX_CLASSES = 2**31 - 1  # class ids are int32 in the EfficientNMS layout
SCHEMA = Path(__file__).with_name("data") / "nvinfer_config_schema.json"


def engine_name(onnx_name: str, batch: int, gpu_id: int, precision: str) -> str:
    """The file name nvinfer gives the engine it builds from `onnx-file` (and looks for at model-engine-file)."""
    return f"{onnx_name}_b{batch}_gpu{gpu_id}_{precision}.engine"


def config_text(
    m: Manifest, onnx_name: str, precision: str = "fp32", gpu_id: int = 0, score_threshold: float = 0.25
) -> str:
    """The config; `precision` is the engine's (network-mode): TensorRT builds it from the FP32 ONNX."""
    batch = int(m.batch.max)
    h, w = m.image_size
    prop = {
        "gpu-id": gpu_id,
        "net-scale-factor": 1.0,
        "offsets": "0;0;0",
        "model-color-format": 0,
        "onnx-file": onnx_name,
        "model-engine-file": engine_name(onnx_name, batch, gpu_id, precision),
        "labelfile-path": LABELS_NAME,
        "batch-size": batch,
        "network-mode": NETWORK_MODE[precision],
        "num-detected-classes": len(m.class_names),
        "infer-dims": f"3;{h};{w}",
        "interval": 0,
        "gie-unique-id": 1,
        "process-mode": 1,
        "network-type": 0,
        "cluster-mode": 4,
        "maintain-aspect-ratio": 1,
        "symmetric-padding": 0,
        "output-blob-names": ";".join(m.outputs),
        "parse-bbox-func-name": STOCK_PARSER,
        "custom-lib-path": STOCK_PARSER_LIBRARY,
    }
    attrs = {"pre-cluster-threshold": score_threshold, "topk": int(m.postprocess.max_det)}
    lines = [
        f"# DeepStream Gst-nvinfer config for {m.model['name']} ({precision} engine), written by edgedet",
        "[property]",
        *(f"{k}={v}" for k, v in prop.items()),
        "",
        "[class-attrs-all]",
        *(f"{k}={v}" for k, v in attrs.items()),
        "",
    ]
    return "\n".join(lines)


@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(SCHEMA.read_text())


_LIST_ITEM = {"int-list": int, "float-list": float, "string-list": str}


def _check_value(key: str, value: str, spec: dict) -> str | None:
    kind = spec["type"]
    try:
        if kind == "bool":
            if value.lower() not in ("0", "1", "true", "false"):
                return "must be 0 or 1"
            return None
        if kind in _LIST_ITEM:
            [_LIST_ITEM[kind](v) for v in value.split(";") if v != ""]
            return None
        v = {"int": int, "float": float, "string": str}[kind](value)
    except ValueError:
        return f"must be {kind}"
    if "choices" in spec and v not in spec["choices"]:
        return f"must be one of {spec['choices']}"
    if "min" in spec and v < spec["min"]:
        return f"must be >= {spec['min']}"
    if "min_exclusive" in spec and v <= spec["min_exclusive"]:
        return f"must be > {spec['min_exclusive']}"
    if "max" in spec and v > spec["max"]:
        return f"must be <= {spec['max']}"
    return None


def validate_config(text: str) -> list[str]:
    """Problems of a Gst-nvinfer config against the documented keys and value types (empty: valid)."""
    s = schema()
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=None)
    parser.optionxform = str  # GKeyFile keys are case-sensitive (minBoxes)
    try:
        parser.read_string(text)
    except configparser.Error as e:
        return [f"not a key file: {e}"]
    problems = []
    for section in parser.sections():
        group = next((g for g, rx in s["group_names"].items() if re.match(rx, section)), None)
        if group is None:
            problems.append(f"[{section}] is not a Gst-nvinfer group")
            continue
        for key, value in parser[section].items():
            spec = s["groups"][group].get(key)
            why = (
                f"unknown key (not in Gst-nvinfer's [{group}] keys)" if spec is None else _check_value(key, value, spec)
            )
            if why:
                problems.append(f"[{section}] {key}={value}: {why}")
    for group, keys in s["required"].items():
        present = parser[group] if parser.has_section(group) else {}
        problems += [f"[{group}] lacks {k}" for k in keys if k not in present]
    return problems


def write_deepstream(
    inner: Path, folder: Path, precision: str = "fp32", score_threshold: float = 0.25, gpu_id: int = 0
) -> Path:
    """Lay out the folder from the built ONNX (efficientnms outputs, pixel input); returns the config's path."""
    m = Manifest.read(inner)
    if (m.postprocess.output_form, m.input.normalize, m.input.dtype) != ("efficientnms", "in_graph", "float32"):
        raise ConversionError(f"{inner.name} is not an efficientnms ONNX of pixel input: DeepStream cannot read it")
    check_classes(m.class_names, "DeepStream (labels.txt)", MAX_CLASSES)
    onnx_name = f"{m.model['name']}.onnx"
    with publish_folder(folder) as tmp:
        target = tmp / onnx_name
        shutil.copyfile(inner, target)
        m.derive(extra={"consumer": "deepstream"}).write(target)
        served = Manifest.read(target)
        text = config_text(served, onnx_name, precision, gpu_id, score_threshold)
        problems = validate_config(text)
        if problems:
            raise ConversionError(f"{CONFIG_NAME} fails Gst-nvinfer's documented keys: {problems[0]}")
        (tmp / CONFIG_NAME).write_text(text)
        (tmp / LABELS_NAME).write_text("\n".join(served.class_names) + "\n")
    return folder / CONFIG_NAME
