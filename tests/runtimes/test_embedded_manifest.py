"""The manifest travels inside the model file (ONNX metadata_props, OpenVINO rt_info): a lone .onnx or .xml loads
and detects from it; a sidecar that disagrees with it is refused naming the fields; a damaged or missing embedded
copy of a lone file is one clear line (exit 2 from the CLI)."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgedet.embedded import KEY, read_ir, read_onnx, write_onnx
from edgedet.errors import ArtifactError
from edgedet.manifest import Manifest, manifest_path
from edgedet.runtimes import Detector


def _lone(src, folder):
    """The model file (and the IR's .bin) copied without its sidecar."""
    folder.mkdir(exist_ok=True)
    shutil.copy(src, folder / src.name)
    if src.suffix == ".xml":
        shutil.copy(src.with_suffix(".bin"), folder / src.with_suffix(".bin").name)
    return folder / src.name


@pytest.mark.parametrize("kind", ["onnx", "openvino", "onnx_graph"])
def test_lone_file_loads_and_detects(kind, artifacts, images, tmp_path):
    src = artifacts[kind]
    lone = _lone(src, tmp_path / "lone")
    assert not manifest_path(lone).exists()
    with Detector.load(src) as a, Detector.load(lone) as b:
        assert b.manifest.class_names == a.manifest.class_names
        for x, y in zip(a(images), b(images)):
            assert len(x) == len(y) > 0
            np.testing.assert_array_equal(x.class_ids, y.class_ids)
            np.testing.assert_allclose(x.xyxy, y.xyxy, atol=1e-4)


def test_embedded_copy_has_no_artifact_section_and_its_own_hash(artifacts):
    """The hash-of-itself decision: the file cannot carry its own SHA-256, so the copy omits the artifact section;
    the sidecar's artifact.sha256 hashes the final file, embedded copy included."""
    from edgedet.weights import file_sha256

    for kind, reader in (("onnx", read_onnx), ("openvino", read_ir)):
        path = artifacts[kind]
        copy = json.loads(reader(path))
        sidecar = json.loads(manifest_path(path).read_text())
        assert copy["artifact"] is None and sidecar["artifact"]["sha256"] == file_sha256(path)
        m = Manifest.from_dict(copy)
        assert m.content_sha256 == m.content_hash()
        assert {k: v for k, v in copy.items() if k not in ("artifact", "content_sha256")} == {
            k: v for k, v in sidecar.items() if k not in ("artifact", "content_sha256")
        }


def test_onnx_writer_keeps_the_model_bytes(artifacts, tmp_path):
    import onnx

    lone = _lone(artifacts["onnx"], tmp_path)
    before = onnx.load(lone)
    write_onnx(lone, {KEY: "{}", "other": "kept"})
    after = onnx.load(lone)
    assert after.graph.SerializeToString() == before.graph.SerializeToString()
    props = {p.key: p.value for p in after.metadata_props}
    assert (
        props[KEY] == "{}" and props["other"] == "kept" and len(after.metadata_props) == len(before.metadata_props) + 1
    )


def test_disagreeing_sidecar_is_refused(artifacts, tmp_path):
    src = artifacts["onnx"]
    dst = _lone(src, tmp_path)
    m = Manifest.read(src)
    data = m.to_dict()
    data["class_names"] = ["cat"] + data["class_names"][1:]
    data["postprocess"]["iou_threshold"] = 0.7
    other = Manifest.from_dict(data)
    other.content_sha256 = other.content_hash()
    # a sidecar written for the file as it is (its hashes hold) but describing another artifact
    from edgedet.fileio import write_json_atomic

    write_json_atomic(manifest_path(dst), other.to_dict())
    with pytest.raises(ArtifactError, match=r"disagrees with the manifest embedded in .*class_names.*iou_threshold"):
        Detector.load(dst)


@pytest.mark.parametrize("damage", ["truncated", "garbage json", "edited copy"])
def test_damaged_embedded_copy_of_a_lone_file(damage, artifacts, images, tmp_path):
    import cv2

    lone = _lone(artifacts["onnx"], tmp_path)
    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), images[0])
    if damage == "truncated":
        lone.write_bytes(lone.read_bytes()[: lone.stat().st_size // 2])
        match = "damaged"
    elif damage == "garbage json":
        write_onnx(lone, {KEY: "{ not json"})
        match = "not valid JSON"
    else:
        data = json.loads(read_onnx(lone))
        data["class_names"][0] = "cat"
        write_onnx(lone, {KEY: json.dumps(data)})
        match = "edited after it was written"
    with pytest.raises(ArtifactError, match=match):
        Detector.load(lone)
    r = subprocess.run(
        [sys.executable, "-m", "edgedet", "detect", "--model", str(lone), "--source", str(photo)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert match in r.stderr


def test_lone_ir_without_embedded_copy(artifacts, tmp_path):
    import xml.etree.ElementTree as ET

    lone = _lone(artifacts["openvino"], tmp_path)
    tree = ET.parse(lone)
    rt = tree.getroot().find("rt_info")
    rt.remove(rt.find(KEY))
    tree.write(lone)
    with pytest.raises(ArtifactError, match="no manifest for test.xml.*or one embedded in the file"):
        Detector.load(lone)
