"""NVIDIA Triton model repository: `<repo>/<name>/config.pbtxt`, `<repo>/<name>/1/<model file>`, the inner
artifact's manifest and a labels file.

The inner artifact is built through the cache for a Triton backend (onnxruntime -> model.onnx, openvino ->
model.xml/.bin, tensorrt -> model.plan) with in-graph post-processing (outputs num_detections, boxes, scores,
classes: no ensemble) and a dynamic batch. Pre-processing stays on the client (letterbox; the tensor the
manifest describes). Every written config.pbtxt is parsed with Triton's own ModelConfig protobuf schema
(shipped in tritonclient) and its tensors are checked against the artifact's manifest.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgedet.errors import BackendUnavailableError, ConversionError
from edgedet.fileio import publish_folder
from edgedet.manifest import TRITON_MANIFEST_PARAMETER as MANIFEST_PARAMETER
from edgedet.manifest import Manifest

DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "uint8": "TYPE_UINT8", "int64": "TYPE_INT64"}
OUTPUT_DTYPES = {"num_detections": "int64", "boxes": "float32", "scores": "float32", "classes": "int64"}


@dataclass(frozen=True)
class TritonBackend:
    """How Triton runs one of our formats: its backend/platform line and the file name it loads."""

    config_line: str
    model_file: str
    kind: str  # instance kind


# Triton backend rows, keyed by our backend name (edgedet.registry.BACKENDS)
TRITON = {
    "onnxruntime": TritonBackend('backend: "onnxruntime"', "model.onnx", "KIND_CPU"),
    "openvino": TritonBackend('backend: "openvino"', "model.xml", "KIND_CPU"),
    "tensorrt": TritonBackend('platform: "tensorrt_plan"', "model.plan", "KIND_GPU"),
}


def _dims(shape) -> list[int]:
    return [int(d) for d in shape]


def _pbtxt_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_text(name: str, m: Manifest, triton: TritonBackend, instances: int, queue_delay_us: int) -> str:
    """config.pbtxt; it carries the manifest (parameter edgedet_manifest), so a client needs only the URL."""
    inp = m.input
    d = m.postprocess.max_det
    outputs = {"num_detections": ([1], True), "boxes": ([d, 4], False), "scores": ([d], False), "classes": ([d], False)}
    out_lines = []
    for out, (dims, scalar) in outputs.items():
        extra = " reshape: { shape: [ ] }" if scalar else ""
        label = ' label_filename: "labels.txt"' if out == "classes" else ""
        out_lines.append(
            f'  {{ name: "{out}" data_type: {DTYPES[OUTPUT_DTYPES[out]]} dims: {_dims(dims)}{extra}{label} }}'
        )
    max_batch = m.batch.max
    preferred = sorted({b for b in (1, 2, 4, 8, max_batch) if b <= max_batch})
    dims = _dims(inp.shape[1:])
    return "\n".join(
        [
            f'name: "{name}"',
            triton.config_line,
            f"max_batch_size: {max_batch}",
            f'input [ {{ name: "{inp.name}" data_type: {DTYPES[inp.dtype]} dims: {dims} }} ]',
            "output [",
            ",\n".join(out_lines),
            "]",
            f"dynamic_batching {{ preferred_batch_size: {preferred} max_queue_delay_microseconds: {queue_delay_us} }}",
            f"instance_group [ {{ count: {instances} kind: {triton.kind} }} ]",
            f'model_warmup [ {{ name: "zeros" batch_size: 1 inputs {{ key: "{inp.name}" value {{ '
            f"data_type: {DTYPES[inp.dtype]} dims: {dims} zero_data: true }} }} }} ]",
            f'parameters {{ key: "{MANIFEST_PARAMETER}" value {{ string_value: '
            f"{_pbtxt_string(json.dumps(m.to_dict(), separators=(',', ':'), ensure_ascii=True))} }} }}",
            "",
        ]
    )


def validate_config(text: str, m: Manifest):
    """Parse with Triton's ModelConfig schema; check tensor names, dtypes and dims against the manifest."""
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError as e:
        raise BackendUnavailableError("triton (model config schema)", "triton", e) from e
    try:
        cfg = text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as e:
        raise ConversionError(f"config.pbtxt does not parse with Triton's ModelConfig schema: {e}") from None
    want_in = (m.input.name, DTYPES[m.input.dtype], _dims(m.input.shape[1:]))
    got_in = [(i.name, model_config_pb2.DataType.Name(i.data_type), list(i.dims)) for i in cfg.input]
    if got_in != [want_in]:
        raise ConversionError(f"config.pbtxt input {got_in} does not match the artifact's {want_in}")
    got_out = {o.name: model_config_pb2.DataType.Name(o.data_type) for o in cfg.output}
    want_out = {n: DTYPES[OUTPUT_DTYPES[n]] for n in m.outputs}
    if got_out != want_out:
        raise ConversionError(f"config.pbtxt outputs {got_out} do not match the artifact's {want_out}")
    carried = cfg.parameters[MANIFEST_PARAMETER].string_value if MANIFEST_PARAMETER in cfg.parameters else ""
    if not carried or json.loads(carried) != json.loads(json.dumps(m.to_dict())):
        raise ConversionError(f"config.pbtxt parameter {MANIFEST_PARAMETER} does not carry the artifact's manifest")
    return cfg


def labels_text(class_names) -> str:
    """labels.txt: one class name a line, which is how Triton reads it (line by line, no escapes). A name with a line
    break would shift every later label, so it is refused, naming the class."""
    for i, name in enumerate(class_names):
        if name.splitlines() != [name]:
            raise ConversionError(
                f"class {i} name {name!r:.60} contains a line break (or is empty): Triton's labels.txt has one "
                "label a line, so every later label would shift; rename the class"
            )
    return "\n".join(class_names) + "\n"


def write_repository(
    inner: Path,
    backend: str,
    config_path: Path,
    instances: int = 1,
    queue_delay_us: int = 100,
    offline_note: str = "",
    model_file: str | None = None,
) -> Path:
    """Lay out `<repo>/<name>/` from a built inner artifact, in a temp folder renamed into place (an existing
    model folder is replaced only once the new one is complete)."""
    m = Manifest.read(inner)
    labels = labels_text(m.class_names)  # refused before anything is written
    if not m.postprocess.in_graph:
        raise ConversionError(
            "Triton repositories use in-graph post-processing (no ensemble): build with postprocess='graph'"
        )
    triton = TRITON[backend]
    model_dir = config_path.parent
    name = model_dir.name
    with publish_folder(model_dir) as tmp:
        version = tmp / "1"
        version.mkdir()
        target = version / (model_file or triton.model_file)
        for src in [inner] + [inner.with_name(f) for f in m.artifact.extra_files]:
            shutil.copyfile(src, version / (target.stem + src.suffix if src != inner else target.name))
        m.derive().write(target)  # the copy under Triton's file name gets its own manifest
        served = Manifest.read(target)
        text = config_text(name, served, triton, instances, queue_delay_us)
        validate_config(text, served)
        (tmp / "config.pbtxt").write_text(text)
        (tmp / "labels.txt").write_text(labels)
        if offline_note:
            (version / "BUILD_ENGINE.txt").write_text(offline_note + "\n")
        m.derive(
            extra={"triton_backend": backend, "inner_file": f"1/{target.name}", "inner_sha256": m.artifact.sha256}
        ).write(tmp / "config.pbtxt")
    return config_path
