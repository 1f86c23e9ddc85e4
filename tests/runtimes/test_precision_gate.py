"""A precision that failed its accuracy gate is never run by default; tuned runtime options travel in the manifest."""

from __future__ import annotations

import shutil

import pytest

from edgedet import precision as gates
from edgedet.manifest import Manifest


@pytest.fixture(autouse=True)
def own_store(tmp_path, monkeypatch):
    """Verdicts recorded here stay here: the session's other tests run these artifacts at their defaults."""
    monkeypatch.setattr(gates, "_store", lambda: tmp_path / "precision_gates.json")


from edgedet.runtimes import Detector


def test_openvino_runs_f32_where_the_default_precision_failed(artifacts, monkeypatch):
    """The device's own precision (bf16 on BF16/AMX CPUs) failed for this artifact: the runner runs f32 and says why;
    a precision asked for explicitly is still run. On a CPU without bf16, the same path is taken by telling the
    runner the device default is bf16 (OpenVINO then honours the f32 hint it is given)."""
    from edgedet.runtimes import openvino_runner

    pytest.importorskip("openvino")
    path = artifacts["openvino"]
    m = Manifest.read(path)
    monkeypatch.setattr(openvino_runner, "device_precision", lambda core, dev: "bf16")
    with Detector.load(path) as det:
        assert det.runner.precision_note == ""  # never gated: the device default stands
    gates.record(m, "openvino", "bf16", gates.verdict(0.40, 0.60, 0.01))
    with Detector.load(path) as det:
        assert det.runner.execution_precision == "f32"
        assert "bf16 failed its accuracy gate" in det.runner.precision_note
    gates.record(m, "openvino", "bf16", gates.verdict(0.60, 0.60, 0.01))  # a later gate passed
    with Detector.load(path) as det:
        assert det.runner.precision_note == ""


def test_tuned_runtime_options_are_the_artifact_defaults(artifacts, tmp_path):
    src = artifacts["onnx"]
    tuned = tmp_path / src.name
    shutil.copy(src, tuned)
    m = Manifest.read(src)
    m.derive(extra={"runtime_options": {"onnxruntime": {"threads": 1}, "openvino": {"threads": 1}}}).write(tuned)
    with Detector.load(tuned) as det:
        assert det.runner.session.get_session_options().intra_op_num_threads == 1
    with Detector.load(tuned, threads=2) as det:  # given options win
        assert det.runner.session.get_session_options().intra_op_num_threads == 2
    with Detector.load(tuned, backend="openvino") as det:  # each backend reads its own
        assert int(det.runner.compiled.get_property("INFERENCE_NUM_THREADS")) == 1
    with Detector.load(tuned, backend="openvino", threads=2) as det:
        assert int(det.runner.compiled.get_property("INFERENCE_NUM_THREADS")) == 2
