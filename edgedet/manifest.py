"""The JSON manifest written beside every artifact: everything a runtime needs without the model code.

Typed sections (model, input, batch, postprocess, artifact, cost), validated on read: a missing or wrongly
typed key is an ArtifactError naming the key and the file. A derived artifact's manifest comes from
`Manifest.derive(**changes)`. `write()` embeds a copy in the model file where its format carries metadata (ONNX
metadata_props, OpenVINO rt_info: edgedet.embedded), hashes every file of the artifact (IR .bin included) and
writes the manifest atomically, last.

The hash of itself: a file cannot hold the SHA-256 of its own bytes, so the embedded copy has no `artifact`
section; its `content_sha256` covers every other field. The sidecar's artifact section hashes the final file, the
embedded copy included. A lone file (sidecar lost) loads from its embedded copy: an edited copy is refused, but
only a sidecar proves that the weights are the exported ones. When both exist they must agree field by field.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import platform
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ArtifactError
from .fileio import write_json_atomic
from .weights import file_sha256

# the Triton model config parameter that carries the manifest (written by converters/triton_repo.py, read by
# runtimes/triton_runner.py): a client of the server needs only the model URL
TRITON_MANIFEST_PARAMETER = "edgedet_manifest"
FORMAT_VERSION = 2

# Tensor names written by the exporters; everything downstream reads them from the manifest.
INPUT_NAME = "images"
HOST_OUTPUTS = ("logits", "deltas")
GRAPH_OUTPUTS = ("num_detections", "boxes", "scores", "classes")

MODEL_KEYS = {
    "name": str,
    "image_size": list,
    "num_classes": int,
    "min_level": int,
    "max_level": int,
    "num_scales": int,
    "aspect_ratios": list,
    "anchor_scale": float,
    "mean": list,
    "std": list,
}


def manifest_path(artifact: str | Path) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


@dataclass(frozen=True)
class InputSection:
    name: str
    shape: list  # ints, or a string for a dynamic dim
    layout: str  # NCHW | NHWC
    dtype: str  # float32 | uint8
    color: str  # RGB | BGR
    mean: list
    std: list
    normalize: str = "host"  # host | in_graph (u8 input, normalisation baked into the artifact)
    letterbox: str = "bottom-right"


@dataclass(frozen=True)
class BatchSection:
    dynamic: bool
    min: int
    max: int
    opt: int | None = None


@dataclass(frozen=True)
class PostprocessSection:
    in_graph: bool
    score_threshold: float
    iou_threshold: float
    max_candidates: int
    max_det: int
    clip: bool = True
    output_form: str = "edgedet"  # in-graph output layout: a row of edgedet.postprocess.OUTPUT_FORMS
    # run-time NMS options the graph takes as inputs with defaults: option (iou_threshold, max_det, classes) -> name
    runtime_inputs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ArtifactSection:
    file: str
    format: str
    sha256: str
    size: int
    extra_files: list = field(default_factory=list)
    files_sha256: dict = field(default_factory=dict)  # every companion file (IR .bin, external data)


@dataclass(frozen=True)
class CostSection:
    params: int
    macs: int  # multiply-adds per image of conv/linear layers (the paper's "FLOPs")

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def gflops(self) -> float:
        return 2 * self.macs / 1e9


_SECTIONS = {
    "input": InputSection,
    "batch": BatchSection,
    "postprocess": PostprocessSection,
    "artifact": ArtifactSection,
    "cost": CostSection,
}


@dataclass
class Manifest:
    model: dict  # ModelConfig.to_dict()
    class_names: list
    input: InputSection
    outputs: list
    postprocess: PostprocessSection
    batch: BatchSection
    artifact: ArtifactSection | None = None
    cost: CostSection | None = None
    precision: str = "fp32"
    weights: dict | None = None  # source, sha256
    calibration: dict | None = None  # data hash, method, ranges file, excluded layers, gate
    device: dict | None = None  # engines: gpu, compute capability, TensorRT/CUDA versions
    tools: dict = field(default_factory=dict)
    created: str = ""
    format_version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)
    content_sha256: str = ""  # SHA-256 of every other field: an edited manifest is detected

    # ------------------------------------------------------------------ derive / serialise
    def derive(self, **changes) -> "Manifest":
        """The manifest of an artifact made from this one: changed fields replaced, the artifact section and
        creation time cleared (write() fills them), dict fields `tools` and `extra` merged, less the `extra` keys
        that describe this artifact only (OWN_EXTRA: a tuned choice's evidence, its runtime options, its
        precision verdicts are not those of an INT8 or IR made from it)."""
        inherited = {"tools": self.tools, "extra": {k: v for k, v in self.extra.items() if k not in OWN_EXTRA}}
        for k, base in inherited.items():
            changes[k] = {**base, **changes.get(k, {})}
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"Manifest has no field(s) {sorted(unknown)}")
        return dataclasses.replace(self, **{"artifact": None, "created": "", "content_sha256": "", **changes})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def content_hash(self) -> str:
        body = {k: v for k, v in self.to_dict().items() if k != "content_sha256"}
        return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def embedded_copy(self) -> "Manifest":
        """The copy a model file carries: no artifact section (a file cannot hash itself), its own content hash."""
        copy = dataclasses.replace(self, artifact=None, content_sha256="")
        copy.content_sha256 = copy.content_hash()
        return copy

    def write(self, artifact_path: str | Path, extra_files: tuple[str, ...] = (), metadata: dict | None = None) -> Path:
        """Embed a copy in the model file (formats that carry metadata; `metadata`: more entries for it, e.g.
        OpenVINO model_api's model_info), hash the artifact (and its companion files) into the artifact section,
        then write the manifest atomically beside it. Call it last, after every artifact file is in place."""
        from .registry import format_of

        artifact_path = Path(artifact_path)
        fmt = format_of(artifact_path)
        if not self.created:
            self.created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        self.tools = {"python": platform.python_version(), **self.tools}
        embedding = _embedding(fmt)
        if embedding is not None:
            text = json.dumps(self.embedded_copy().to_dict(), separators=(",", ":"), sort_keys=True)
            embedding.write(artifact_path, {EMBEDDED_KEY: text, **(metadata or {})})
        extra = list(extra_files) + [
            artifact_path.with_suffix(s).name
            for s in fmt.sidecars
            if artifact_path.with_suffix(s).name not in extra_files
        ]
        self.artifact = ArtifactSection(
            file=artifact_path.name,
            format=fmt.name,
            sha256=file_sha256(artifact_path),
            size=artifact_path.stat().st_size,
            extra_files=extra,
            files_sha256={f: file_sha256(artifact_path.with_name(f)) for f in extra},
        )
        self.content_sha256 = self.content_hash()
        path = manifest_path(artifact_path)
        write_json_atomic(path, self.to_dict())
        return path

    # ------------------------------------------------------------------ read / validate
    @classmethod
    def from_dict(cls, data: dict, where: str = "manifest") -> "Manifest":
        if not isinstance(data, dict):
            raise ArtifactError(f"{where}: not a JSON object")
        _check_depth(data, where)
        kwargs = _typed_fields(cls, data, "", where)
        extra_keys = set(data) - {f.name for f in dataclasses.fields(cls)}
        if extra_keys:
            raise ArtifactError(f"{where}: unknown key '{sorted(extra_keys)[0]}' (written by a newer edgedet?)")
        for k, t in MODEL_KEYS.items():
            if k not in kwargs["model"]:
                raise ArtifactError(f"{where}: missing key 'model.{k}'")
            _check_type(kwargs["model"][k], t, f"model.{k}", where)
        m = cls(**kwargs)
        m._check_values(where)
        return m

    def _check_values(self, where: str) -> None:
        """Values a runtime relies on, beyond their types, within sane bounds: each fault is one ArtifactError
        naming the key. (What only the model file can tell, its tensor names and shapes, the Detector checks
        against its runner.)"""

        def bad(key: str, why: str):
            raise ArtifactError(f"{where}: key '{key}' {why}")

        size = self.model["image_size"]
        if len(size) != 2 or not all(_is_int(v) and 0 < v for v in size):
            bad("model.image_size", f"must be two positive integers, got {size!r:.60}")
        if not all(MIN_IMAGE_SIDE <= v <= MAX_IMAGE_SIDE for v in size):
            bad("model.image_size", f"must be within {MIN_IMAGE_SIDE}..{MAX_IMAGE_SIDE} pixels a side, got {size}")
        if not 1 <= self.model["num_classes"] <= MAX_CLASSES:
            bad("model.num_classes", f"must be within 1..{MAX_CLASSES}, got {self.model['num_classes']}")
        for key in ("mean", "std"):
            v = getattr(self.input, key)
            if len(v) != 3 or not all(_is_number(x) for x in v):
                bad(f"input.{key}", f"must be three numbers, got {v!r:.60}")
            if not all(math.isfinite(x) for x in v):
                bad(f"input.{key}", f"must be finite numbers, got {v!r:.60}")
        if any(x == 0 for x in self.input.std):
            bad("input.std", "must not contain 0")
        if any(x < 0 for x in self.input.std):
            bad("input.std", f"must be positive, got {self.input.std!r:.60}")
        _check_input(self.input, size, bad)
        if not 1 <= self.batch.min <= self.batch.max:
            bad("batch", f"must satisfy 1 <= min <= max, got {self.batch.min}..{self.batch.max}")
        if self.batch.max > MAX_BATCH:
            bad("batch.max", f"must be at most {MAX_BATCH}, got {self.batch.max}")
        if not self.class_names or not all(isinstance(c, str) for c in self.class_names):
            bad("class_names", "must be a non-empty list of strings")
        if not self.outputs or not all(isinstance(o, str) and o for o in self.outputs):
            bad("outputs", "must be a non-empty list of tensor names")
        # host post-processing reads the two raw heads; an in-graph form names its own tensors (4 for edgedet's own
        # and TensorRT's EfficientNMS layout, 1 for the SSD and YOLO-NAS layouts)
        if self.postprocess.in_graph:
            from .postprocess import output_form

            want, form = len(output_form(self.postprocess.output_form, where).outputs), self.postprocess.output_form
            form = f"the in-graph output form '{form}'"
        else:
            want, form = len(HOST_OUTPUTS), "host post-processing (raw heads)"
        if len(self.outputs) != want:
            bad("outputs", f"must name {want} tensors for {form}, got {len(self.outputs)}: {self.outputs!r:.80}")
        _check_postprocess(self.postprocess, bad)
        files = (
            []
            if self.artifact is None
            else [self.artifact.file, *self.artifact.extra_files, *self.artifact.files_sha256]
        )
        if any(not isinstance(f, str) or not f or f != Path(f).name for f in files):
            bad("artifact", "names a file outside the artifact's folder")

    @classmethod
    def read(cls, artifact_path: str | Path, verify: bool = True) -> "Manifest":
        """The sidecar manifest, checked against the copy embedded in the model file when it has one (they must
        agree); a lone file with an embedded copy loads from that copy."""
        artifact_path = Path(artifact_path)
        path = manifest_path(artifact_path)
        if not path.is_file():
            embedded = cls.read_embedded(artifact_path)
            if embedded is not None:
                return embedded
            raise ArtifactError(
                f"no manifest for {artifact_path.name}: expected {path.name} beside it"
                + (" or one embedded in the file" if _embedding_of(artifact_path) is not None else "")
                + " (artifacts are written by 'edgedet export' / 'edgedet build')"
            )
        m = cls._parse(_read_json(path), f"manifest {path}")
        if verify:
            m.verify_artifact(artifact_path)  # the file is the one the sidecar hashed: its copy must agree
            embedded = cls.read_embedded(artifact_path)
            if embedded is not None:
                _check_agree(m, embedded, path.name, artifact_path.name)
        return m

    @classmethod
    def _parse(cls, data, where: str) -> "Manifest":
        version = data.get("format_version", 1) if isinstance(data, dict) else None
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise ArtifactError(
                f"{where} has format {version}; this edgedet reads up to {FORMAT_VERSION}: upgrade edgedet"
            )
        # version 1 (untyped, no content hash) reads into the same sections; only v2+ must carry the hash
        return cls.from_dict(data, where=where)

    @classmethod
    def read_embedded(cls, artifact_path: str | Path) -> "Manifest | None":
        """The manifest embedded in a model file (None where the format or the file carries none), its content hash
        verified. Its artifact section describes the file as it is now (sha256 computed here): a lone file
        proves its contract unedited, not its weights (see the module docstring)."""
        from .registry import format_of

        artifact_path = Path(artifact_path)
        embedding = _embedding_of(artifact_path)
        if embedding is None or not artifact_path.is_file():
            return None
        text = embedding.read(artifact_path)
        if text is None:
            return None
        where = f"the manifest embedded in {artifact_path.name} ({embedding.where})"
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise ArtifactError(
                f"{where} is not valid JSON ({str(e)[:200]}): the file is damaged; re-export it"
            ) from None
        m = cls._parse(data, where)
        if m.artifact is not None or m.content_sha256 != m.content_hash():
            raise ArtifactError(f"{where} was edited after it was written (its content hash differs); re-export it")
        fmt = format_of(artifact_path)
        extra = [artifact_path.with_suffix(s).name for s in fmt.sidecars]
        for f in extra:
            if not artifact_path.with_name(f).is_file():
                raise ArtifactError(f"artifact file missing: {artifact_path.with_name(f)}")
        m.artifact = ArtifactSection(
            file=artifact_path.name,
            format=fmt.name,
            sha256=file_sha256(artifact_path),
            size=artifact_path.stat().st_size,
            extra_files=extra,
            files_sha256={},
        )
        return m

    def verify_artifact(self, artifact_path: Path) -> None:
        art = self.artifact
        where = manifest_path(artifact_path).name
        if not self.content_sha256 and self.format_version >= 2:
            raise ArtifactError(f"{where} has no content hash (edited, or not written by edgedet): re-export it")
        if self.content_sha256 and self.content_sha256 != self.content_hash():
            raise ArtifactError(
                f"{where} was edited after it was written (its content hash differs): precision, "
                "tensor names or classes may no longer describe the artifact; re-export it"
            )
        if art is None:
            raise ArtifactError(f"{where}: missing key 'artifact'")
        if art.file != artifact_path.name:
            raise ArtifactError(f"{where} describes {art.file}, not {artifact_path.name}")
        files = {artifact_path.name: art.sha256, **art.files_sha256}
        for f in art.extra_files:
            files.setdefault(f, None)
        for name, want in files.items():
            p = artifact_path.with_name(name)
            if not p.is_file():
                raise ArtifactError(f"artifact file missing: {p}")
            if want and file_sha256(p) != want:
                raise ArtifactError(
                    f"{p.name} does not match its manifest {where} (SHA-256 differs): the file "
                    "was modified, truncated or replaced; re-export it"
                )

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.model["image_size"])


# extra keys about this artifact alone, not inherited by derive(): tune's decision and evidence, the runtime options
# it chose, the precision verdicts measured on it
OWN_EXTRA = ("tune", "runtime_options", "precision_gates")
EMBEDDED_KEY = "edgedet_manifest"  # edgedet.embedded.KEY
# fields a sidecar and the embedded copy may differ in: the artifact section (a file cannot hash itself) and the
# content hashes that cover it
_NOT_EMBEDDED = ("artifact", "content_sha256")


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError, RecursionError) as e:  # RecursionError: nested thousands of levels deep
        raise ArtifactError(f"manifest {path} is not valid JSON: {str(e)[:200]}") from None


def _embedding(fmt):
    from .registry import load_object

    return load_object(fmt.embedding) if fmt.embedding else None


def _embedding_of(artifact_path: Path):
    from .registry import format_of

    try:
        return _embedding(format_of(artifact_path))
    except ArtifactError:
        return None


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}")
    return out


def _check_agree(sidecar: Manifest, embedded: Manifest, sidecar_name: str, file_name: str) -> None:
    a = {k: v for k, v in sidecar.to_dict().items() if k not in _NOT_EMBEDDED}
    b = {k: v for k, v in embedded.to_dict().items() if k not in _NOT_EMBEDDED}
    diff = _differences(json.loads(json.dumps(a)), json.loads(json.dumps(b)))
    if diff:
        shown = ", ".join(diff[:6]) + (f" and {len(diff) - 6} more" if len(diff) > 6 else "")
        raise ArtifactError(
            f"{sidecar_name} disagrees with the manifest embedded in {file_name} ({shown}): one of them was "
            "replaced or edited; re-export the artifact (or delete the sidecar to use the embedded copy)"
        )


def _typed_fields(cls, data: dict, prefix: str, where: str) -> dict:
    """The fields of dataclass `cls` found in `data`, each type-checked; a top-level field that is a section
    (input, batch, ...) becomes its dataclass. A missing required key is named as `prefix + name`."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ArtifactError(f"{where}: missing key '{key}'")
            continue
        value = data[f.name]
        section = None if prefix else _SECTIONS.get(f.name)
        if section is not None and value is not None:
            if not isinstance(value, dict):
                raise ArtifactError(f"{where}: key '{key}' must be an object, got {type(value).__name__}")
            value = section(**_typed_fields(section, value, f"{key}.", where))
        else:
            _check_type(value, hints[f.name], key, where)
        kwargs[f.name] = value
    return kwargs


def _check_type(value, hint, key: str, where: str) -> None:
    if not _is_instance(value, hint):
        raise ArtifactError(f"{where}: key '{key}' has the wrong type ({type(value).__name__}: {value!r:.60})")


def _is_instance(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_is_instance(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    base = origin or hint
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, base)


# sane bounds of a manifest's values (D7 takes 1536 px; TensorRT profiles rarely exceed batch 64)
MIN_IMAGE_SIDE, MAX_IMAGE_SIDE = 16, 4096
MAX_BATCH = 1024
MAX_CLASSES = 100_000
MAX_DEPTH = 32  # nesting of JSON objects and lists: the manifest's own is 4
LAYOUTS = {"NCHW": (1, (2, 3)), "NHWC": (3, (1, 2))}  # layout -> (channel axis, (height axis, width axis))
INPUT_DTYPES = ("float32", "float16", "uint8")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_depth(data, where: str) -> None:
    """A manifest nested deeper than MAX_DEPTH is refused before anything recurses into it (RecursionError)."""
    level, depth = [data], 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise ArtifactError(f"{where}: nested more than {MAX_DEPTH} levels deep; not an edgedet manifest")
        level = [
            v
            for item in level
            for v in (item.values() if isinstance(item, dict) else item)
            if isinstance(v, (dict, list))
        ]


def _check_input(inp: "InputSection", size, bad) -> None:
    """The input tensor's name, layout, dtype and shape, and its spatial dims against model.image_size."""
    if not isinstance(inp.name, str) or not inp.name:
        bad("input.name", "must be a tensor name")
    if inp.layout not in LAYOUTS:
        bad("input.layout", f"must be one of {', '.join(LAYOUTS)}, got {inp.layout!r:.40}")
    if inp.dtype not in INPUT_DTYPES:
        bad("input.dtype", f"must be one of {', '.join(INPUT_DTYPES)}, got {inp.dtype!r:.40}")
    shape = inp.shape
    if len(shape) != 4 or not all((_is_int(d) and d > 0) or isinstance(d, str) for d in shape):
        bad("input.shape", f"must be 4 dims (positive integers, or names for dynamic ones), got {shape!r:.60}")
    channel, (h, w) = LAYOUTS[inp.layout]
    if _is_int(shape[channel]) and shape[channel] != 3:
        bad("input.shape", f"has {shape[channel]} channels in {inp.layout}; the model takes 3")
    if _is_int(shape[0]) and shape[0] > MAX_BATCH:
        bad("input.shape", f"has a batch of {shape[0]}, over {MAX_BATCH}")
    spatial = [shape[h], shape[w]]
    if all(_is_int(d) for d in spatial) and spatial != list(size):
        bad("input.shape", f"is {spatial[0]}x{spatial[1]} ({inp.layout}) but model.image_size is {size[0]}x{size[1]}")


def _check_postprocess(pp: "PostprocessSection", bad) -> None:
    for key in ("score_threshold", "iou_threshold"):
        v = getattr(pp, key)
        if not (math.isfinite(v) and 0 <= v <= 1):
            bad(f"postprocess.{key}", f"must be within 0..1, got {v!r:.40}")
    for key, top in (("max_candidates", 1_000_000), ("max_det", 100_000)):
        v = getattr(pp, key)
        if not 1 <= v <= top:
            bad(f"postprocess.{key}", f"must be within 1..{top}, got {v}")


def tool_versions(*names: str) -> dict:
    from importlib import metadata

    out = {}
    for n in ("edgedet",) + names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    return out
