"""`edgedet tune` on the tiny model: the space from the tables, the choice and its export, the gate, resuming from
the cache, the budget."""

from __future__ import annotations

import json
import time

import pytest

from edgedet import precision as gates
from edgedet.benchmarks import tune as tune_mod  # the modules the CLI runs (a monkeypatch must reach them)
from edgedet.benchmarks.tune import Target, TuneRequest, tune
from edgedet.benchmarks.tune_space import EXACT, parse_models, runtime_precisions, sizes_for, space
from edgedet.errors import InputError
from edgedet.manifest import Manifest
from edgedet.registry import get_backend

BACKENDS = ["onnxruntime", "openvino"]


@pytest.fixture(autouse=True)
def own_store(tmp_path, monkeypatch):
    monkeypatch.setattr(gates, "_store", lambda: tmp_path / "precision_gates.json")


@pytest.fixture(scope="module")
def val(tmp_path_factory):
    from edgedet.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("tune_val"), "val", 8, size=128, seed=4)


def request(test_weights, val, tmp_path, **kw) -> TuneRequest:
    base = dict(
        models=[("test", str(test_weights))],
        data=str(val),
        target=Target("latency", 10_000),
        out=str(tmp_path / "tuned"),
        sizes=[128],
        backends=BACKENDS,
        iters=3,
        cache=tmp_path / "cache",
    )
    return TuneRequest(**{**base, **kw})


def test_space_comes_from_the_tables(test_weights):
    assert sizes_for("d0", 256, None) == [256, 128]
    assert sizes_for("d0", None, None) == [512, 384, 256, 128]
    assert parse_models(f"test={test_weights},d0") == [("test", str(test_weights)), ("d0", None)]
    with pytest.raises(InputError, match="unknown model"):
        parse_models("d42=w.pth")
    ov, ort = get_backend("openvino"), get_backend("onnxruntime")
    assert runtime_precisions(ov)[0] == EXACT and "bf16" in runtime_precisions(ov)  # the runner's declared option
    assert runtime_precisions(ort) == ["default"]
    cands = space([("test", None)], [ort, ov], sizes=[128, 256], device="cpu")
    assert {c.imgsz for c in cands} == {128, 256} and {c.postprocess for c in cands} == {"host", "graph"}
    assert all(c.build == "fp32" for c in cands)  # reduced builds only where the device computes them natively
    assert len({c.key() for c in cands}) == len(cands)


def test_tune_chooses_exports_and_resumes(test_weights, val, tmp_path):
    """The choice meets the target and has the best full AP among the measured deployable points, is on the Pareto
    front, and is exported with its evidence and runtime options; `bench --data` on it reproduces its AP; the same
    command again finishes from the cache in under a tenth of the time."""
    from edgedet.benchmarks.harness import BenchConfig, run_bench

    t0 = time.perf_counter()
    first = tune(request(test_weights, val, tmp_path), log=lambda m: None)
    first_s = time.perf_counter() - t0
    chosen = first["chosen"]
    assert chosen and chosen["on_front"] and chosen["label"] in first["front"]
    measured = [r for r in first["points"] if r["status"] == "measured"]
    assert len(measured) >= 4 and all(r["p50_ms"] > 0 for r in measured)
    deployable = [r for r in measured if r["AP"] is not None and (r["gate"] or {"passed": True})["passed"]]
    assert chosen["AP"] >= max(r["AP"] for r in deployable) - tune_mod.AP_TIE  # the best (ties: the faster)
    statuses = {r["status"] for r in first["points"]}
    assert statuses <= {"measured", "duplicate", "unsupported"}

    art = chosen["exported"]
    m = Manifest.read(art)
    assert m.extra["tune"]["decision"] == chosen["decision"]
    assert m.extra["tune"]["evidence"]["AP"] == chosen["AP"]
    backend = chosen["candidate"]["backend"]
    assert m.extra["runtime_options"][backend] == chosen["runtime_options"]
    report = run_bench(BenchConfig(models=[], backends=[], artifacts=[art], data=str(val), iters=3, baseline=False))
    row = report["rows"][0]
    assert row["executed_precision"] == chosen["executed"]
    assert abs(row["AP"] - chosen["AP"]) <= 1e-4
    assert json.loads((tmp_path / "tuned" / "tune.json").read_text())["chosen"]["label"] == chosen["label"]
    assert (tmp_path / "tuned" / "tune_pareto.png").read_bytes()[:4] == b"\x89PNG"

    t0 = time.perf_counter()
    second = tune(request(test_weights, val, tmp_path), log=lambda m: None)
    second_s = time.perf_counter() - t0
    assert second["measured_this_run"] == 0 and second["from_cache"] == len(first["points"])
    assert second["chosen"]["label"] == chosen["label"]
    assert second_s < first_s / 10, (first_s, second_s)


def test_a_precision_over_its_budget_is_never_chosen(test_weights, val, tmp_path):
    """A reduced precision whose AP falls more than --max-ap-drop below f32 fails its gate: not chosen, not on the
    front, and recorded, so the OpenVINO runner no longer runs it by default for that artifact."""
    req = request(test_weights, val, tmp_path, backends=["openvino"])
    first = tune(req, log=lambda m: None)
    reduced = [r for r in first["points"] if r["status"] == "measured" and gates.is_reduced(r["executed"])]
    if not reduced:
        pytest.skip("OpenVINO runs nothing below f32 on this CPU")
    points = tune_mod.measure.Points(req.cache)
    for r in reduced:  # plant a lower AP for every reduced point, as if bf16 lost accuracy on this model
        cand = next(e for e in first["points"] if e["key"] == r["key"])
        path = points.root / f"{cand['key']}.json"
        data = json.loads(path.read_text())
        for stats in data["ap"].values():
            stats["AP"] = round(stats["AP"] - 0.05, 5)
        path.write_text(json.dumps(data))
    second = tune(req, log=lambda m: None)
    assert not gates.is_reduced(second["chosen"]["executed"])
    for r in second["points"]:
        if r["key"] in {x["key"] for x in reduced} and r["AP"] is not None:
            assert r["gate"]["passed"] is False and not r["on_front"] and not r["chosen"]
    from edgedet.runtimes import Detector

    with Detector.load(reduced[0]["artifact"]) as det:  # the default now runs f32 for that artifact
        assert det.runner.execution_precision == "f32" and "failed its accuracy gate" in det.runner.precision_note


def test_budget_and_interrupt(test_weights, val, tmp_path, monkeypatch, capsys):
    """A spent budget skips and says so (exit 1: nothing to choose); Ctrl-C keeps what was measured (exit 130) and the
    same command continues from it."""
    from edgedet.cli import main

    argv = [
        "tune",
        "--model",
        f"test={test_weights}",
        "--data",
        str(val),
        "--latency-ms",
        "10000",
        "--sizes",
        "128",
        "--backends",
        "onnxruntime",
        "--iters",
        "2",
        "--out",
        str(tmp_path / "out"),
        "--json",
    ]
    monkeypatch.setenv("EDGEDET_CACHE", str(tmp_path / "cache"))
    assert main([*argv, "--budget-min", "0.00001"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["chosen"] is None and any("budget" in s["why"] for s in report["skipped"])

    real = tune_mod.Search.evaluate

    def interrupted(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(tune_mod.Search, "evaluate", interrupted)
    assert main(argv) == 130
    report = json.loads(capsys.readouterr().out)
    assert report["interrupted"] and report["measured_this_run"] >= 1
    monkeypatch.setattr(tune_mod.Search, "evaluate", real)
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["from_cache"] >= 1 and report["chosen"]


def test_user_errors(test_weights, val, tmp_path, capsys):
    from edgedet.cli import main

    base = ["tune", "--model", f"test={test_weights}", "--data", str(val), "--out", str(tmp_path)]
    for argv in (base, [*base, "--latency-ms", "10", "--min-ap", "0.5"]):  # no target; two targets
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
    argv = ["tune", "--model", "test=/nope.pth", "--data", str(val), "--out", str(tmp_path), "--latency-ms", "9"]
    assert main(argv) == 2
    assert "not found" in capsys.readouterr().err


def test_int8_candidates_through_calibrate(test_weights, val, tmp_path, monkeypatch, capsys):
    """With --calib (and --exhaustive: every base), INT8 comes from calibrate's strategy and gate, is timed and gated
    like any reduced precision; the library's chatter stays off stdout, which --json keeps for the JSON."""
    from edgedet.cli import main

    monkeypatch.setenv("EDGEDET_CACHE", str(tmp_path / "cache"))
    argv = ["tune", "--model", f"test={test_weights}", "--data", str(val), "--calib", str(val.parent / "images")]
    argv += ["--latency-ms", "10000", "--sizes", "128", "--backends", "onnxruntime", "--iters", "2", "--exhaustive"]
    assert main([*argv, "--out", str(tmp_path / "out"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    int8 = [r for r in report["points"] if r["candidate"]["build"] == "int8"]
    assert int8 and all(r["status"] == "measured" and r["p50_ms"] > 0 for r in int8)
    for r in int8:
        assert gates.is_int8(r["executed"]) and r["AP"] is not None
        assert r["gate"]["reference"].startswith("test@128 onnxruntime") and "passed" in r["gate"]
