"""ONNX export: checker, opset, op set, dynamic batch, in-graph NMS, fp16, atomic writes."""

import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edgedet.converters.onnx_export import ExportOptions, export_onnx
from edgedet.errors import ConversionError
from edgedet.manifest import Manifest, manifest_path
from edgedet.model import create_model
from edgedet.model.export import FlatHeads

STANDARD_DOMAINS = {"", "ai.onnx"}


def _ops(path):
    return collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)


@pytest.mark.parametrize("key", ["onnx", "onnx_graph", "onnx_dynamic"])
def test_checker_opset_and_standard_ops(artifacts, key):
    path = artifacts[key]
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert {o.domain for o in model.opset_import} <= STANDARD_DOMAINS
    assert max(o.version for o in model.opset_import) >= 17
    assert all(n.domain in STANDARD_DOMAINS for n in model.graph.node)
    ops = _ops(path)
    assert ops["Sigmoid"] > 0 and ops["Mul"] > 0  # SiLU as Sigmoid * Mul
    assert not {"Swish", "SiLU", "HardSwish"} & set(ops)
    m = Manifest.read(path)
    assert m.artifact.file == path.name and m.extra["opset"] >= 17


def test_graph_postprocess_uses_nonmaxsuppression(artifacts):
    ops = _ops(artifacts["onnx_graph"])
    assert ops["NonMaxSuppression"] == 1 and ops["TopK"] == 2
    names = [o.name for o in onnx.load(str(artifacts["onnx_graph"])).graph.output]
    assert names == ["num_detections", "boxes", "scores", "classes"]


def test_onnx_matches_torch(artifacts, test_weights):
    model = create_model("test", weights=test_weights)
    x = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = [t.numpy() for t in FlatHeads(model)(x)]
    sess = ort.InferenceSession(str(artifacts["onnx"]), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"images": x.numpy()})
    for a, b in zip(out, ref):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def test_dynamic_batch(artifacts):
    sess = ort.InferenceSession(str(artifacts["onnx_dynamic"]), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((3, 3, 128, 128)).astype(np.float32)
    logits, deltas = sess.run(None, {"images": x})
    assert logits.shape[0] == 3 and deltas.shape[0] == 3
    single = sess.run(None, {"images": x[1:2]})[0]
    np.testing.assert_allclose(single[0], logits[1], atol=1e-4)
    b = Manifest.read(artifacts["onnx_dynamic"]).batch
    assert (b.dynamic, b.min, b.max) == (True, 1, 8)


def test_fp16_export_close_to_fp32(tmp_path, test_weights):
    model = create_model("test", weights=test_weights)
    path = export_onnx(model, tmp_path / "fp16.onnx", ExportOptions(precision="fp16"))
    proto = onnx.load(str(path))
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in proto.graph.initializer)
    x = np.random.default_rng(1).standard_normal((1, 3, 128, 128)).astype(np.float32)
    with torch.no_grad():
        ref = FlatHeads(model)(torch.from_numpy(x))[0].numpy()
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
    assert np.abs(out - ref).max() < 0.05 * np.abs(ref).max()
    assert Manifest.read(path).precision == "fp16"


def test_failed_reexport_keeps_the_good_artifact(tmp_path, test_weights, monkeypatch):
    """Issue 16 #7: an interrupted re-export leaves the previous, valid artifact loadable and no temp files."""
    from edgedet.runtimes import Detector

    model = create_model("test", weights=test_weights)
    target = tmp_path / "m.onnx"
    export_onnx(model, target, ExportOptions())
    before = (target.read_bytes(), manifest_path(target).read_text())

    def boom(*a, **k):
        raise KeyboardInterrupt  # an interrupted build

    monkeypatch.setattr(onnx, "save_model", boom)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(model, target, ExportOptions(postprocess="graph"))
    assert (target.read_bytes(), manifest_path(target).read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.json"]  # no temp files left behind
    Detector.load(target).close()


def test_export_failure_is_conversion_error(tmp_path, monkeypatch):
    model = create_model("test")
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("unsupported op")))
    with pytest.raises(ConversionError, match="unsupported op"):
        export_onnx(model, tmp_path / "x.onnx")
    assert not any(tmp_path.iterdir())


def test_a_checkpoint_with_fewer_class_names_warns_and_fills_them(tmp_path, test_weights):
    """A trained checkpoint naming 3 of the model's 90 classes exported without a word; the manifest now names
    every class, and the export says which names were filled in."""
    import torch

    from edgedet.converters.pipeline import BuildRequest, export_artifact
    from edgedet.manifest import Manifest

    ckpt = tmp_path / "named.pth"
    torch.save({"state_dict": torch.load(test_weights, weights_only=True), "class_names": ["a", "b", "c"]}, ckpt)
    with pytest.warns(UserWarning, match="3 class names for a model of 90 classes: classes 3..89 are named"):
        path = export_artifact(BuildRequest("test", "onnx", weights=str(ckpt)), tmp_path / "out")
    names = Manifest.read(path).class_names
    assert len(names) == 90 and names[:3] == ["a", "b", "c"]
