"""Detector parity across backends, batching, registry, and bad artifacts."""

import json
import subprocess
import sys

import numpy as np
import pytest

from edgedet.errors import ArtifactError, BackendUnavailableError
from edgedet.manifest import manifest_path
from edgedet.registry import backend_for, get_backend
from edgedet.runtimes import Detector

CONF = 0.3


def _load(path, **kw):
    if str(path).endswith(".xml") or kw.get("backend") == "openvino":
        kw.setdefault("inference_precision", "f32")  # exact f32 for parity (bf16 is the speed option)
    return Detector.load(path, **kw)


@pytest.fixture(scope="module")
def reference(artifacts, images):
    det = _load(artifacts["torch"])
    return [det(img, score_threshold=CONF) for img in images]


@pytest.mark.parametrize(
    "key, backend",
    [
        ("onnx", None),
        ("onnx_graph", None),
        ("onnx_dynamic", None),
        ("openvino", None),
        ("openvino_graph", None),
        ("onnx", "openvino"),
    ],
)
def test_parity_with_torch(artifacts, images, reference, key, backend):
    det = _load(artifacts[key], backend=backend)
    for img, ref in zip(images, reference):
        got = det(img, score_threshold=CONF)
        assert len(ref) > 3
        assert len(got) == len(ref)
        np.testing.assert_array_equal(got.class_ids, ref.class_ids)  # same classes, same order
        scale = np.abs(ref.xyxy).max()
        assert np.abs(got.xyxy - ref.xyxy).max() <= 1e-3 * scale
        np.testing.assert_allclose(got.scores, ref.scores, atol=1e-4)
        assert got.labels == ref.labels


def test_detections_in_original_pixels(artifacts, images):
    det = _load(artifacts["onnx"])
    img = images[0][:300, :450]
    d = det(img, score_threshold=0.0)
    assert len(d) == 100  # max_det
    assert (d.xyxy[:, [0, 2]] <= 450).all() and (d.xyxy[:, [1, 3]] <= 300).all() and (d.xyxy >= 0).all()
    assert (np.diff(d.scores) <= 0).all()


def test_list_input_and_batching(artifacts, images):
    dyn = _load(artifacts["onnx_dynamic"])
    static = _load(artifacts["onnx"])
    batch = dyn(images + images, score_threshold=CONF)
    singles = [static(i, score_threshold=CONF) for i in images + images]
    assert len(batch) == 6
    for a, b in zip(batch, singles):
        np.testing.assert_array_equal(a.class_ids, b.class_ids)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-2)
    assert dyn([]) == []


def test_registry_by_suffix():
    from pathlib import Path

    assert backend_for(Path("a.onnx"), None).name == "onnxruntime"
    assert backend_for(Path("a.xml"), None).name == "openvino"
    assert backend_for(Path("a.engine"), None).name == "tensorrt"
    assert backend_for(Path("a.onnx"), "ov").name == "openvino"
    with pytest.raises(ArtifactError, match="cannot tell the format"):
        backend_for(Path("a.tflite"), None)
    with pytest.raises(ArtifactError, match="cannot run"):
        backend_for(Path("a.xml"), "onnxruntime")


def test_missing_backend_names_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    with pytest.raises(BackendUnavailableError, match=r"pip install 'edgedet\[openvino\]'"):
        get_backend("openvino").runner_class()


def test_runtime_path_does_not_import_torch(artifacts):
    code = (
        "import sys; from edgedet.runtimes import Detector; import numpy as np;"
        f"d = Detector.load({str(artifacts['onnx'])!r}); d(np.zeros((64, 64, 3), np.uint8));"
        f"d = Detector.load({str(artifacts['openvino'])!r}); d(np.zeros((64, 64, 3), np.uint8));"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _copy(src, dst_dir, with_bin=False):
    import shutil

    dst_dir.mkdir(exist_ok=True)
    dst = dst_dir / src.name
    shutil.copy(src, dst)
    shutil.copy(manifest_path(src), manifest_path(dst))
    if with_bin:
        shutil.copy(src.with_suffix(".bin"), dst.with_suffix(".bin"))
    return dst


def test_truncated_onnx(tmp_path, artifacts):
    p = _copy(artifacts["onnx"], tmp_path)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(ArtifactError, match="does not match its manifest"):
        Detector.load(p)
    with pytest.raises(ArtifactError, match="ONNX Runtime cannot load"):
        Detector.load(p, verify=False)


def test_corrupt_ir(tmp_path, artifacts):
    p = _copy(artifacts["openvino"], tmp_path, with_bin=True)
    p.with_suffix(".bin").write_bytes(b"\0" * 100)
    with pytest.raises(ArtifactError, match=r"\.bin does not match its manifest"):  # every file is hashed
        Detector.load(p)
    with pytest.raises(ArtifactError, match="OpenVINO cannot load"):
        Detector.load(p, verify=False)
    p.with_suffix(".bin").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        Detector.load(p)


def test_manifest_missing_or_mismatched(tmp_path, artifacts):
    p = _copy(artifacts["onnx"], tmp_path)
    data = json.loads(manifest_path(p).read_text())
    manifest_path(p).unlink()
    Detector.load(p).close()  # a lone file loads from its embedded copy (tests/runtimes/test_embedded_manifest.py)
    import onnx

    proto = onnx.load(p)
    del proto.metadata_props[:]
    onnx.save(proto, p)
    with pytest.raises(ArtifactError, match="no manifest"):
        Detector.load(p)
    data["input"]["shape"] = [1, 3, 256, 256]  # a manifest of another input size
    data["model"]["image_size"] = [256, 256]
    manifest_path(p).write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="manifest says"):
        Detector.load(p, verify=False)
    manifest_path(p).write_text("{ not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        Detector.load(p)


def test_not_found():
    with pytest.raises(ArtifactError, match="not found"):
        Detector.load("/nonexistent/model.onnx")


# ---------------------------------------------------------------- hostile manifests (issue 27)
def _rehash(data: dict) -> dict:
    """A hostile manifest with a valid content hash (anyone can recompute it): only value checks can refuse it."""
    import hashlib

    body = {k: v for k, v in data.items() if k != "content_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return {**data, "content_sha256": hashlib.sha256(text.encode()).hexdigest()}


def _set(data: dict, key: str, value) -> None:
    *path, last = key.split(".")
    for k in path:
        data = data[k]
    data[last] = value


HOSTILE_MANIFESTS = {
    "image_size 100000": ({"model.image_size": [100000, 100000]}, "model.image_size"),
    "batch.max 10^9": ({"batch.max": 10**9}, "batch.max"),
    "image_size not the model's": ({"model.image_size": [256, 256]}, "input.shape"),
    "input name not the model's": ({"input.name": "pixels"}, "manifest says 'pixels'"),
    "outputs not the model's": ({"outputs": ["logits", "boxes_out"]}, "no output boxes_out"),
    "one output for two heads": ({"outputs": ["logits"]}, "outputs"),
    "NaN mean": ({"input.mean": [float("nan"), 0.5, 0.5]}, "input.mean"),
    "infinite std": ({"input.std": [0.2, float("inf"), 0.2]}, "input.std"),
    "negative std": ({"input.std": [0.2, -0.2, 0.2]}, "input.std"),
    "100 levels deep": ({"extra.x": json.loads("[" * 100 + "]" * 100)}, "nested more than"),
}


@pytest.mark.parametrize("case", list(HOSTILE_MANIFESTS))
def test_hostile_manifests_are_one_line_artifact_errors(tmp_path, artifacts, case):
    """Values a runtime relies on are checked against sane bounds and against the model on load: each fault is
    one ArtifactError naming it, never a MemoryError, a backend traceback, or 0 detections with exit 0."""
    changes, match = HOSTILE_MANIFESTS[case]
    p = _copy(artifacts["onnx"], tmp_path)
    data = json.loads(manifest_path(p).read_text())
    for key, value in changes.items():
        _set(data, key, value)
    manifest_path(p).write_text(json.dumps(_rehash(data)))
    # verify=False: the copy embedded in the file would refuse the edited sidecar first (a disagreement); here the
    # values themselves, and the model they describe, must refuse it
    with pytest.raises(ArtifactError, match=match) as e:
        Detector.load(p, verify=False)(np.zeros((64, 64, 3), np.uint8))
    assert "\n" not in str(e.value)


def test_a_manifest_nested_100000_deep_is_an_artifact_error(tmp_path, artifacts):
    p = _copy(artifacts["onnx"], tmp_path)
    text = manifest_path(p).read_text().rstrip()
    assert text.endswith("}")
    manifest_path(p).write_text(text[:-1] + ', "deep": ' + "[" * 100000 + "]" * 100000 + "}")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        Detector.load(p)
