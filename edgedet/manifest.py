"""The JSON manifest written beside every artifact: everything a runtime needs without the model code."""
from __future__ import annotations

import datetime as _dt
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ArtifactError
from .fileio import write_json_atomic
from .weights import file_sha256

FORMAT_VERSION = 1


def manifest_path(artifact: str | Path) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


@dataclass
class Manifest:
    model: dict                          # ModelConfig.to_dict()
    class_names: list[str]
    artifact: dict                       # file, format, sha256, size, extra_files
    input: dict                          # name, shape, layout, dtype, color, mean, std, letterbox
    outputs: list[str]
    postprocess: dict                    # in_graph, score_threshold, iou_threshold, max_candidates, max_det
    batch: dict                          # min, max, dynamic
    precision: str = "fp32"
    weights: dict | None = None          # source, sha256
    calibration: dict | None = None      # data hash, method, ranges file, excluded layers
    device: dict | None = None           # engines: gpu, compute capability, TensorRT/CUDA versions
    tools: dict = field(default_factory=dict)
    created: str = ""
    format_version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def write(self, artifact_path: str | Path) -> Path:
        if not self.created:
            self.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.tools.setdefault("python", platform.python_version())
        path = manifest_path(artifact_path)
        write_json_atomic(path, self.to_dict())
        return path

    @classmethod
    def read(cls, artifact_path: str | Path, verify: bool = True) -> "Manifest":
        artifact_path = Path(artifact_path)
        path = manifest_path(artifact_path)
        if not path.is_file():
            raise ArtifactError(f"no manifest for {artifact_path.name}: expected {path.name} beside it "
                                "(artifacts are written by 'edgedet export' / 'edgedet build')")
        try:
            data = json.loads(path.read_text())
            m = cls(**data)
        except (ValueError, TypeError) as e:
            raise ArtifactError(f"manifest {path} is corrupt or from an incompatible edgedet: {e}") from None
        if m.format_version > FORMAT_VERSION:
            raise ArtifactError(f"manifest {path} has format {m.format_version}; this edgedet reads up to "
                                f"{FORMAT_VERSION}: upgrade edgedet")
        if verify:
            m.verify_artifact(artifact_path)
        return m

    def verify_artifact(self, artifact_path: Path) -> None:
        files = [artifact_path] + [artifact_path.with_name(f) for f in self.artifact.get("extra_files", [])]
        for f in files:
            if not f.is_file():
                raise ArtifactError(f"artifact file missing: {f}")
        if self.artifact.get("file") not in (None, artifact_path.name):
            raise ArtifactError(f"manifest {manifest_path(artifact_path).name} describes "
                                f"{self.artifact['file']}, not {artifact_path.name}")
        want = self.artifact.get("sha256")
        if want and file_sha256(artifact_path) != want:
            raise ArtifactError(f"{artifact_path.name} does not match its manifest (SHA-256 differs): "
                                "the file was modified, truncated or replaced; re-export it")


def describe_artifact(path: Path, fmt: str, extra_files=()) -> dict:
    return {"file": path.name, "format": fmt, "sha256": file_sha256(path), "size": path.stat().st_size,
            "extra_files": list(extra_files)}


def tool_versions(*names: str) -> dict:
    from importlib import metadata
    out = {}
    for n in ("edgedet",) + names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    return out
