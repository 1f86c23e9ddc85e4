"""calibrate's report covers the float precisions below f32 that backends run by default (OpenVINO bf16/f16)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from edgedet import precision as gates
from edgedet.manifest import Manifest


@pytest.fixture(autouse=True)
def own_store(tmp_path, monkeypatch):
    monkeypatch.setattr(gates, "_store", lambda: tmp_path / "precision_gates.json")


def test_reduced_precisions_are_gated_and_recorded(monkeypatch, artifacts):
    """The FP32 artifact and the INT8 artifact as run by default: where the backend runs them below f32 their AP
    is set against the exact FP32 AP and the verdict kept; where it runs f32 (ONNX Runtime) nothing is evaluated."""
    from edgedet.converters.int8 import gate, pipeline
    from edgedet.converters.int8.strategies import STRATEGIES

    fp32, int8 = artifacts["onnx"], artifacts["openvino"]  # the IR stands in for an INT8 artifact of that ONNX
    executed = {(str(fp32), "openvino"): "bf16", (str(int8), "openvino"): "int8 + bf16"}
    monkeypatch.setattr(gate, "executed_by_default", lambda p, b: executed.get((str(p), b), "f32"))
    aps = {str(fp32): 0.595, str(int8): 0.57}
    evaluated = []

    def as_run(p, val, images, backend):
        evaluated.append((str(p), backend))
        return aps[str(p)]

    monkeypatch.setattr(gate, "evaluate_as_run", as_run)
    req = SimpleNamespace(val="val.json", val_images=None, max_map_drop=0.01)
    rows = pipeline._reduced_precisions(
        fp32,
        [STRATEGIES["openvino"], STRATEGIES["onnxruntime"]],
        [{"artifact": str(int8)}, {"artifact": str(artifacts["onnx_graph"])}],
        {"openvino": 0.60},
        req,
        log=lambda m: None,
    )
    assert evaluated == [(str(fp32), "openvino"), (str(int8), "openvino")]  # ONNX Runtime runs f32: no evaluation
    by_built = {r["built"]: r for r in rows}
    assert by_built["fp32"]["drop"] == pytest.approx(0.005) and by_built["fp32"]["passed"] is True
    assert by_built["int8"]["drop"] == pytest.approx(0.03) and by_built["int8"]["passed"] is False
    assert by_built["int8"]["precision"] == "bf16"
    assert gates.failed(Manifest.read(int8), "openvino", "bf16")["drop"] == pytest.approx(0.03)
    assert gates.failed(Manifest.read(fp32), "openvino", "bf16") is None
