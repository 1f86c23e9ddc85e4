"""The manifest inside the model file: ONNX `metadata_props`, OpenVINO IR `rt_info`.

A model file copied alone keeps its contract. Both are read and written without the model's library (no onnx, no
openvino): an ONNX file is a protobuf ModelProto whose top-level fields can be walked by their lengths (the graph is
skipped, never parsed), and an IR's `rt_info` is an element of its .xml. So a runtime-only install reads them, and
writing one never re-serialises (or re-compresses) the weights.

Each format that can carry metadata names its `Embedding` in its FORMATS row (edgedet.registry); plans and state
dicts have none and keep their sidecar only.
"""

from __future__ import annotations

import mmap
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from .errors import ArtifactError
from .fileio import atomic_path

KEY = "edgedet_manifest"  # the metadata_props key / rt_info element that carries the manifest JSON


# ------------------------------------------------------------------------------------------------ ONNX protobuf
_METADATA_PROPS = 14  # ModelProto.metadata_props: repeated StringStringEntryProto {1: key, 2: value}
_LEN = 2  # length-delimited wire type


def _varint(buf, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated or malformed protobuf varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        out.append(b | 0x80 if value else b)
        if not value:
            return bytes(out)


def _fields(buf):
    """(field number, wire type, start of the field, start of its payload, end) of each top-level field."""
    pos = 0
    while pos < len(buf):
        start = pos
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, pos = _varint(buf, pos)
            payload = pos
        elif wire == 1:
            payload, pos = pos, pos + 8
        elif wire == _LEN:
            length, payload = _varint(buf, pos)
            pos = payload + length
        elif wire == 5:
            payload, pos = pos, pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > len(buf) or number == 0:
            raise ValueError("truncated or malformed protobuf")
        yield number, wire, start, payload, pos


def _entry(buf) -> tuple[str, str]:
    key = value = ""
    for number, wire, _, payload, end in _fields(buf):
        if wire == _LEN and number in (1, 2):
            text = bytes(buf[payload:end]).decode("utf-8")
            key, value = (text, value) if number == 1 else (key, text)
    return key, value


def _onnx_metadata(buf) -> dict[str, str]:
    out = {}
    for number, wire, _, payload, end in _fields(buf):
        if number == _METADATA_PROPS and wire == _LEN:
            key, value = _entry(memoryview(buf)[payload:end])
            out[key] = value
    return out


def read_onnx(path: Path) -> str | None:
    with open(path, "rb") as f:
        if not f.seek(0, 2):
            raise ValueError("empty file")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _onnx_metadata(buf).get(KEY)


def write_onnx(path: Path, entries: dict[str, str]) -> None:
    """Set metadata_props entries (replacing entries of the same keys); every other field is copied byte for byte."""
    buf = path.read_bytes()
    kept = bytearray()
    for number, wire, start, payload, end in _fields(buf):
        if number == _METADATA_PROPS and wire == _LEN and _entry(memoryview(buf)[payload:end])[0] in entries:
            continue
        kept += buf[start:end]
    for key, value in entries.items():
        body = b""
        for number, text in ((1, key), (2, value)):
            data = text.encode("utf-8")
            body += _encode_varint(number << 3 | _LEN) + _encode_varint(len(data)) + data
        kept += _encode_varint(_METADATA_PROPS << 3 | _LEN) + _encode_varint(len(body)) + body
    with atomic_path(path) as tmp:
        tmp.write_bytes(bytes(kept))


# ------------------------------------------------------------------------------------------------ OpenVINO IR xml
def read_ir(path: Path) -> str | None:
    """The model-level rt_info follows the graph (`</edges>`): only that tail is parsed, not the layers (a full
    parse of a D7 IR takes a second on every load); a file without that shape is parsed whole."""
    data = Path(path).read_bytes()
    end = data.rfind(b"</edges>")
    root = (
        ET.fromstring(b"<net>" + data[end + len(b"</edges>") :].split(b"</net>")[0] + b"</net>")
        if end >= 0
        else ET.fromstring(data)
    )
    node = root.find(f"rt_info/{KEY}")
    return None if node is None else node.get("value")


def write_ir(path: Path, entries: dict) -> None:
    """Set rt_info entries of an IR .xml: a string becomes <key value="..."/>, a dict a nested element (OpenVINO's
    own rt_info layout, e.g. model_info/model_type). The .bin is not touched."""
    tree = ET.parse(path)
    root = tree.getroot()
    rt = root.find("rt_info")
    if rt is None:
        rt = ET.SubElement(root, "rt_info")
    _set(rt, entries)
    with atomic_path(path) as tmp:
        tree.write(tmp, encoding="utf-8", xml_declaration=True)


def _set(parent, entries: dict) -> None:
    for key, value in entries.items():
        for old in parent.findall(key):
            parent.remove(old)
        node = ET.SubElement(parent, key)
        if isinstance(value, dict):
            _set(node, value)
        else:
            node.set("value", str(value))


# ------------------------------------------------------------------------------------------------ the table rows
@dataclass(frozen=True)
class Embedding:
    """How one format carries metadata: read the manifest JSON (None when absent), write entries."""

    where: str  # said in messages: "ONNX metadata_props", "OpenVINO rt_info"
    reader: object
    writer: object

    def read(self, path: Path) -> str | None:
        try:
            return self.reader(path)
        except (OSError, ValueError, UnicodeDecodeError, ET.ParseError) as e:
            raise ArtifactError(f"{path.name}: cannot read its {self.where} ({e}): the file is damaged") from None

    def write(self, path: Path, entries: dict) -> None:
        try:
            self.writer(path, entries)
        except (ValueError, ET.ParseError) as e:
            raise ArtifactError(f"{path.name}: cannot write its {self.where} ({e})") from None


ONNX = Embedding("ONNX metadata_props", read_onnx, write_onnx)
OPENVINO = Embedding("OpenVINO rt_info", read_ir, write_ir)
