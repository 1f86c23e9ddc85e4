"""The artifact cache under damage and races (issue 16): a damaged entry (truncated .bin, edited manifest) is
rebuilt; two processes building the same entry at once both get a valid artifact."""

import json
import subprocess
import sys

import pytest

from edgedet.converters.pipeline import BuildRequest, get_artifact
from edgedet.errors import ArtifactError
from edgedet.manifest import Manifest, manifest_path
from edgedet.runtimes import Detector


def test_truncated_cached_bin_is_rebuilt(tmp_path, test_weights):
    """#3: every file of an artifact is hashed: a truncated IR .bin is detected and the entry rebuilt."""
    req = BuildRequest("test", "openvino", weights=str(test_weights))
    first = get_artifact(req, root=tmp_path)
    bin_path = first.path.with_suffix(".bin")
    bin_path.write_bytes(bin_path.read_bytes()[:1000])
    with pytest.raises(ArtifactError, match=r"test\.bin does not match its manifest"):
        Detector.load(first.path)
    again = get_artifact(req, root=tmp_path)
    assert not again.cached and again.path == first.path
    Detector.load(again.path, inference_precision="f32").close()


def test_edited_manifest_is_detected_and_rebuilt(tmp_path, test_weights):
    """#3: the manifest's own content is hashed: an edited precision or class list is refused."""
    req = BuildRequest("test", "onnx", weights=str(test_weights))
    first = get_artifact(req, root=tmp_path)
    data = json.loads(manifest_path(first.path).read_text())
    data["class_names"][0] = "cat"
    manifest_path(first.path).write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="was edited after it was written"):
        Manifest.read(first.path)
    assert not get_artifact(req, root=tmp_path).cached


RACE = """
import sys
from edgedet.converters.pipeline import BuildRequest, get_artifact
from edgedet.runtimes import Detector
r = get_artifact(BuildRequest("test", "openvino", weights=sys.argv[2]), root=__import__("pathlib").Path(sys.argv[1]))
Detector.load(r.path, inference_precision="f32").close()
print("cached" if r.cached else "built")
"""


@pytest.mark.parametrize("trial", range(3))
def test_two_processes_build_one_entry(tmp_path, test_weights, trial):
    """#6: started together on a cold cache: one builds, the other waits and reuses it; both load it."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(tmp_path), str(test_weights)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-800:] for _, e in outs]
    assert sorted(o.strip() for o, _ in outs) == ["built", "cached"]
    leftovers = [p.name for p in tmp_path.rglob(".*tmp*")]
    assert leftovers == []
