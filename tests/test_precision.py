"""edgedet.precision: executed precisions parsed, gate verdicts kept per artifact and read back."""

from __future__ import annotations

import dataclasses

import pytest

from edgedet import precision as gates
from edgedet.manifest import Manifest


@pytest.fixture(autouse=True)
def own_store(tmp_path, monkeypatch):
    """Verdicts recorded here stay here: the session's other tests run these artifacts at their defaults."""
    monkeypatch.setattr(gates, "_store", lambda: tmp_path / "precision_gates.json")


@pytest.mark.parametrize(
    "executed, fp, reduced, int8",
    [
        ("bf16", "bf16", True, False),
        ("f32", "f32", False, False),
        ("int8 + bf16", "bf16", True, True),
        ("int8 + f32", "f32", False, True),
        ("fp32 (CPUExecutionProvider)", "f32", False, False),
        ("fp16", "f16", True, False),
        ("<Type: 'bfloat16'>", "bf16", True, False),
        ("int8", None, False, True),
        ("unknown", None, False, False),
    ],
)
def test_float_part(executed, fp, reduced, int8):
    assert gates.float_part(executed) == fp
    assert gates.is_reduced(executed) is reduced
    assert gates.is_int8(executed) is int8


def test_verdict_and_budget():
    v = gates.verdict(0.70, 0.72, 0.01)
    assert v["drop"] == pytest.approx(0.02) and v["passed"] is False
    assert gates.verdict(0.715, 0.72, 0.01)["passed"] is True
    assert gates.verdict(0.73, 0.72, 0.01)["passed"] is True  # better than f32 never fails


def test_records_follow_the_artifact_and_its_onnx(artifacts):
    onnx, ir = Manifest.read(artifacts["onnx"]), Manifest.read(artifacts["openvino"])
    other = Manifest.read(artifacts["onnx_graph"])
    assert gates.lookup(ir, "openvino", "bf16") is None and gates.failed(ir, "openvino", "bf16") is None
    gates.record(onnx, "openvino", "bf16", gates.verdict(0.5, 0.6, 0.01))
    # the IR converted from that ONNX computes the same model: the verdict holds for it too; another ONNX is not it
    assert gates.failed(ir, "openvino", "bf16")["drop"] == pytest.approx(0.1)
    assert gates.failed(onnx, "openvino", "bf16") is not None
    assert gates.failed(other, "openvino", "bf16") is None
    assert gates.failed(onnx, "onnxruntime", "bf16") is None  # per backend
    assert gates.failed(onnx, "openvino", "f32") is None  # f32 is never gated
    before = gates.failed_fingerprint()
    gates.record(onnx, "openvino", "bf16", gates.verdict(0.6, 0.6, 0.01))  # the latest gate wins
    assert gates.failed(ir, "openvino", "bf16") is None and gates.failed_fingerprint() != before


def test_a_manifest_carries_its_own_verdict(artifacts):
    m = Manifest.read(artifacts["onnx"])
    own = m.derive(extra={"precision_gates": {"openvino:f16": gates.verdict(0.1, 0.5, 0.01)}})
    assert gates.failed(own, "openvino", "f16")["passed"] is False
    assert gates.failed(m, "openvino", "f16") is None


def test_a_later_gate_on_this_machine_overrides_the_manifests_verdict(artifacts, tmp_path):
    """An artifact exported with a passing verdict (calibrate's, tune's) that a later `bench --data` fails: the
    newer verdict holds, in both directions."""
    m = Manifest.read(artifacts["onnx"])
    passed = {"openvino:bf16": {**gates.verdict(0.6, 0.6, 0.01), "date": "2026-01-01T00:00:00+00:00"}}
    shipped = m.derive(extra={"precision_gates": passed}, created="2026-01-01T00:00:00+00:00")
    shipped.artifact = m.artifact
    assert gates.failed(shipped, "openvino", "bf16") is None
    gates.record(shipped, "openvino", "bf16", gates.verdict(0.5, 0.6, 0.01))  # now: after the manifest's
    assert gates.failed(shipped, "openvino", "bf16")["drop"] == pytest.approx(0.1)
    later = {"openvino:bf16": {**gates.verdict(0.6, 0.6, 0.01), "date": "2999-01-01T00:00:00+00:00"}}
    assert gates.failed(dataclasses.replace(shipped, extra={"precision_gates": later}), "openvino", "bf16") is None


def test_a_damaged_store_is_no_verdict(artifacts):
    gates._store().parent.mkdir(parents=True, exist_ok=True)
    gates._store().write_text("{not json")
    assert gates.lookup(Manifest.read(artifacts["onnx"]), "openvino", "bf16") is None
    gates.record(Manifest.read(artifacts["onnx"]), "openvino", "bf16", gates.verdict(0.6, 0.6, 0.01))
    assert gates.lookup(Manifest.read(artifacts["onnx"]), "openvino", "bf16")["passed"] is True


def test_identity_covers_what_the_detector_does_with_the_files(artifacts):
    """A torch state dict is the same file at every input size: the manifest's model section is part of what runs."""
    import dataclasses

    m = Manifest.read(artifacts["torch"])
    bigger = dataclasses.replace(m, model={**m.model, "image_size": [256, 256]})
    assert gates.artifact_identity(m) != gates.artifact_identity(bigger)
    assert gates.artifact_identity(m) == gates.artifact_identity(Manifest.read(artifacts["torch"]))


def test_a_derived_artifact_does_not_inherit_the_verdicts_or_the_tuned_choice(artifacts):
    """An INT8 or IR made from a tuned export is another artifact: tune's evidence, runtime options and precision
    verdicts stay with the one they were measured on; the float model's identity is inherited."""
    m = Manifest.read(artifacts["onnx"])
    own = {
        "tune": {"AP": 0.7},
        "runtime_options": {"openvino": {"threads": 1}},
        "precision_gates": {"openvino:bf16": {}},
    }
    tuned = m.derive(extra=own)
    assert all(tuned.extra[k] == v for k, v in own.items())
    derived = tuned.derive(precision="int8", extra={"int8_form": "openvino"})
    assert not set(own) & set(derived.extra)
    assert derived.extra["float_graph_sha256"] == m.extra["float_graph_sha256"] and derived.extra["int8_form"]
