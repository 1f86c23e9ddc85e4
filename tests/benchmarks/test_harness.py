"""Bench harness: fields, real percentiles, outputs, interruption, bad input."""

import json

import numpy as np
import pytest

from benchmarks import harness
from benchmarks.harness import BenchConfig, run_bench
from benchmarks.report import write_outputs
from benchmarks.stats import summarize
from edgedet.cli import main
from edgedet.errors import InputError


@pytest.fixture(scope="module")
def report():
    cfg = BenchConfig(
        models=["test"], backends=["openvino", "onnxruntime"], iters=6, warmup=1, mode="throughput", batch=2
    )
    return run_bench(cfg)


def test_rows_have_all_fields(report):
    assert [r["backend"] for r in report["rows"]] == ["openvino", "onnxruntime"]
    for r in report["rows"]:
        for k in ("net_ms", "e2e_ms"):
            s = r[k]
            assert s["n"] == 6 and 0 < s["min"] <= s["p50"] <= s["p90"] <= s["p99"]
        assert r["fps_b1"] == pytest.approx(1000 / r["e2e_ms"]["p50"], rel=1e-2)
        assert r["device_ms"] is None  # CPU: no separate device compute time
        assert r["throughput"]["batch"] == 2 and r["throughput"]["fps"] > 0
        assert r["params"] > 0 and r["gflops"] == pytest.approx(2 * r["gmacs"], rel=1e-3)
        assert r["fps_per_gflop"] == pytest.approx(r["fps_b1"] / r["gflops"], rel=1e-2)
        assert set(r["stage_ms_p50"]) == {"pre", "infer", "post"}
        assert r["cold_start_ms"] > 0
    env = report["environment"]
    assert env["cpu"] and env["versions"]["numpy"]


def test_gflops_match_info(report, capsys):
    main(["info", "--model", "test", "--json"])
    info = json.loads(capsys.readouterr().out)
    assert report["rows"][0]["gflops"] == info["gflops"]


def test_percentiles_are_real():
    times = list(np.random.default_rng(0).exponential(5, 101))
    s = summarize(times)
    assert s["p50"] == pytest.approx(np.percentile(times, 50), abs=1e-3)
    assert s["p99"] == pytest.approx(np.percentile(times, 99), abs=1e-3)


def test_outputs_written(report, tmp_path):
    write_outputs(report, tmp_path)
    assert json.loads((tmp_path / "bench.json").read_text())["rows"]
    assert (tmp_path / "bench.csv").read_text().startswith("model,backend")
    assert (tmp_path / "fps_vs_flops.png").read_bytes()[:4] == b"\x89PNG"


def test_interrupt_keeps_measured_rows(monkeypatch):
    real = harness.bench_row
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(harness, "bench_row", flaky)
    rep = run_bench(
        BenchConfig(models=["test"], backends=["onnxruntime", "openvino"], iters=2, warmup=0, baseline=False)
    )
    assert rep["interrupted"] and len(rep["rows"]) == 1


def test_bad_input():
    with pytest.raises(InputError, match="unknown backend"):
        run_bench(BenchConfig(models=["test"], backends=["tflite"]))
    with pytest.raises(InputError, match="iters"):
        run_bench(BenchConfig(models=["test"], backends=["onnxruntime"], iters=0))
    with pytest.raises(InputError, match="unknown model"):
        run_bench(BenchConfig(models=["d42"], backends=["onnxruntime"]))


def test_missing_backend_cli(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    assert main(["bench", "--model", "test", "--backend", "trt"]) == 2
    assert "pip install 'edgedet[tensorrt]'" in capsys.readouterr().err


def test_honest_columns(report):
    """net is timed inside the e2e iterations (net <= e2e); each row says what precision actually ran; achieved
    GFLOP/s is set against the GEMM rate of that precision, measured in the same run with the row's own backend
    library; a fraction above 1.0 comes with its reason; ISA flags are recorded."""
    from edgedet.precision import float_part, is_int8

    assert report["gemm_peak"]["gflops_per_s"] > 1
    libraries = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime"}
    for r in report["rows"]:
        assert r["net_ms"]["p50"] <= r["e2e_ms"]["p50"]
        assert r["executed_precision"] and r["executed_precision"] != "-"
        assert r["achieved_gflops_per_s"] == pytest.approx(r["gflops"] / (r["net_ms"]["p50"] / 1e3), rel=1e-2)
        peak = r["peak"]
        assert peak["how"].startswith(libraries[r["backend"]]) and peak["gflops_per_s"] > 1
        expected = "int8" if is_int8(r["executed_precision"]) else float_part(r["executed_precision"])
        assert peak["precision"] == expected
        assert (
            0 < r["fraction_of_gemm_peak"] == pytest.approx(r["achieved_gflops_per_s"] / peak["gflops_per_s"], rel=1e-2)
        )
        assert r["fraction_of_gemm_peak"] <= 1.0 or "above the" in r["peak_note"]
    ov = next(r for r in report["rows"] if r["backend"] == "openvino")
    assert ov["executed_precision"] in ("f32", "bf16", "f16")
    assert isinstance(report["environment"]["cpu_flags"], list)


def test_peak_falls_back_to_numpy_and_says_so():
    from benchmarks.harness import set_fraction_of_peak

    row = {"backend": "torch", "executed_precision": "fp32", "achieved_gflops_per_s": 150.0, "peak": None}
    set_fraction_of_peak(row, {"gflops_per_s": 100.0, "how": "numpy float32 1024x1024 matmul"})
    assert row["fraction_of_gemm_peak"] == 1.5 and row["peak"]["how"].startswith("numpy f32 GEMM (no torch peak)")
    assert "numpy's f32 GEMM" in row["peak_note"]


def test_reduced_precision_rows_show_f32_ap_and_are_gated(tmp_path, monkeypatch, capsys):
    """--data: a row that executes below f32 (OpenVINO's bf16 default on BF16/AMX CPUs) is also evaluated in f32
    on the same artifact, side by side, and its verdict is kept; a row that runs f32 has nothing to gate."""
    from edgedet import precision as gates
    from edgedet.data.synthetic import generate
    from edgedet.manifest import Manifest

    monkeypatch.setattr(gates, "_store", lambda: tmp_path / "precision_gates.json")
    val = generate(tmp_path / "shapes", "val", 3, size=128, seed=2)
    cfg = BenchConfig(models=["test"], backends=["openvino"], iters=2, warmup=0, baseline=False, data=str(val))
    row = run_bench(cfg)["rows"][0]
    if not gates.is_reduced(row["executed_precision"]):
        assert "AP_f32" not in row and "precision_gate" not in row
        pytest.skip(f"this CPU runs OpenVINO in {row['executed_precision']} by default: nothing below f32 to gate")
    gate = row["precision_gate"]
    assert gate["f32_AP"] == row["AP_f32"] and gate["AP"] == row["AP"]
    assert gate["drop"] == pytest.approx(row["AP_f32"] - row["AP"], abs=1e-5)
    assert gate["passed"] is (gate["drop"] <= cfg.max_ap_drop)
    from edgedet.api import build

    m = Manifest.read(build("test", "openvino").path)
    assert gates.lookup(m, "openvino", gates.float_part(row["executed_precision"]))["drop"] == gate["drop"]


def test_bench_with_coco_data_reports_ap_like_eval(tmp_path, capsys):
    """--data val.json: AP/AP50 next to each row's latency, equal to `edgedet eval` on the same artifact; the
    accuracy-vs-latency plot is written."""
    from pathlib import Path

    from edgedet.data.synthetic import generate

    ref = Path(__file__).resolve().parents[2] / "tests" / "assets" / "reference_d0_shapes_fp16.pth"
    val = generate(tmp_path / "shapes", "val", 8, size=256, seed=3)
    assert (
        main(
            [
                "bench",
                "--model",
                "d0",
                "--weights",
                str(ref),
                "--imgsz",
                "256",
                "--backend",
                "onnxruntime",
                "--iters",
                "3",
                "--warmup",
                "1",
                "--data",
                str(val),
                "--no-baseline",
                "--out",
                str(tmp_path / "out"),
                "--json",
            ]
        )
        == 0
    )
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert 0 < row["AP"] <= 1 and row["AP50"] >= row["AP"]
    assert (
        main(
            [
                "eval",
                "--model",
                "d0",
                "--weights",
                str(ref),
                "--imgsz",
                "256",
                "--backend",
                "onnxruntime",
                "--data",
                str(val),
                "--json",
            ]
        )
        == 0
    )
    stats = json.loads(capsys.readouterr().out)
    assert abs(stats["AP"] - row["AP"]) <= 1e-4 and abs(stats["AP50"] - row["AP50"]) <= 1e-4
    assert (tmp_path / "out" / "ap_vs_latency.png").read_bytes()[:4] == b"\x89PNG"


def test_pareto_front():
    from benchmarks.report import pareto

    pts = [(10, 0.5), (20, 0.6), (15, 0.45), (30, 0.6), (5, 0.3)]
    assert sorted(pareto(pts)) == [0, 1, 4]
