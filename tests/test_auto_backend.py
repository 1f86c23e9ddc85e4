"""The measured default backend: the fastest installed CPU candidate for this model on this machine, cached by
CPU identity, model, input size and library versions."""

import json

import pytest

import edgedet
from edgedet import auto_backend
from edgedet.api import choose_backend
from edgedet.weights import cache_dir


def test_choice_is_the_measured_fastest_and_cached(test_weights, monkeypatch):
    first = choose_backend("test", weights=str(test_weights))
    assert not first.cached and set(first.medians_ms) == {s.name for s in auto_backend.candidates()}
    assert first.backend.name == min(first.medians_ms, key=first.medians_ms.get)
    assert "measured fastest here" in first.reason and "avx" in first.reason
    again = choose_backend("test", weights=str(test_weights))
    assert again.cached and again.backend == first.backend
    table = json.loads((cache_dir() / "default_backend.json").read_text())
    assert any(v["model"] == "test" for v in table.values())
    other = choose_backend("test", weights=str(test_weights), imgsz=160)  # another input size: measured anew
    assert not other.cached
    det = edgedet.load("test", weights=test_weights)  # the facade uses it
    assert det.backend == first.backend.name


def test_measurement_picks_the_lower_median(monkeypatch):
    """On a clock that only the detectors move (a loaded machine cannot reorder them): each backend's median is
    its own call time."""
    import types

    clock = [0.0]
    monkeypatch.setattr(auto_backend, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))

    class Slow:
        def __init__(self, seconds):
            self.seconds = seconds

        def __call__(self, image):
            clock[0] += self.seconds

        def close(self):
            pass

    medians = auto_backend.measure({"a": Slow(0.004), "b": Slow(0.001)}, None)
    assert medians == {"a": pytest.approx(4.0), "b": pytest.approx(1.0)}


def test_a_failed_precision_gate_is_measured_again_and_never_run(test_weights, tmp_path, monkeypatch):
    """The choice names the precision each candidate ran at; a new failed verdict re-measures, and OpenVINO's
    candidate is then timed (and would run) in f32, not in the precision that failed."""
    from edgedet import precision as gates
    from edgedet.api import build
    from edgedet.manifest import Manifest
    from edgedet.runtimes import openvino_runner

    monkeypatch.setattr(gates, "_store", lambda: tmp_path / "precision_gates.json")
    monkeypatch.setattr(openvino_runner, "device_precision", lambda core, dev: "bf16")
    first = choose_backend("test", weights=str(test_weights), imgsz=192)
    table = json.loads((cache_dir() / "default_backend.json").read_text())
    entry = next(v for v in table.values() if v["build"].get("imgsz") == "192")
    assert "failed its accuracy gate" not in entry["executed_precision"]["openvino"]
    ir = Manifest.read(build("test", "openvino", weights=str(test_weights), imgsz=192).path)
    gates.record(ir, "openvino", "bf16", gates.verdict(0.1, 0.5, 0.01))
    again = choose_backend("test", weights=str(test_weights), imgsz=192)
    assert not again.cached and first.backend in auto_backend.candidates()
    assert "openvino (f32; bf16 failed its accuracy gate" in again.reason
