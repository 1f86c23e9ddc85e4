"""`edgedet compare`: detection-level matching, the deployment spelling, AP like eval, tolerances and exit codes."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from edgedet.cli import main
from edgedet.detections import Detections
from edgedet.errors import InputError
from edgedet.matching import match, pairwise_iou, summarize, worst


def dets(boxes, scores, classes) -> Detections:
    return Detections(np.asarray(boxes, np.float32), np.asarray(scores, np.float32), np.asarray(classes), [])


# ---------------------------------------------------------------- matching (pure numpy)
def test_iou_of_known_boxes():
    iou = pairwise_iou([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]])
    assert iou[0].tolist() == pytest.approx([1.0, 50 / 150, 0.0, 0.0])
    flat = [[0, 400, 250, 400]]  # clipped to the bottom edge: zero area
    assert pairwise_iou(flat, [[0, 400, 250.2, 400], [0, 400, 260, 400]])[0].tolist() == [1.0, 0.0]


def test_match_counts_moved_missing_extra_and_classes():
    a = dets([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60]], [0.9, 0.8, 0.7], [0, 1, 2])
    # the first box moved a little (IoU 0.82), the second changed class (missing in B + extra in B), the third is gone
    b = dets([[1, 0, 11, 10], [20, 20, 40, 40]], [0.88, 0.8], [0, 3])
    m = match(a, b, conf=0.25)
    assert m.pairs.tolist() == [[0, 0]]
    assert m.ious[0] == pytest.approx(90 / 110)
    assert m.score_deltas[0] == pytest.approx(-0.02, abs=1e-6)
    assert sorted(m.missing.tolist()) == [1, 2] and m.extra.tolist() == [1]
    s = summarize([m])
    assert (s["matched"], s["missing"], s["extra"]) == (1, 2, 1)
    assert s["match_rate"] == pytest.approx(1 / 4)
    assert s["score_delta"]["max"] == pytest.approx(0.02, abs=1e-6)


def test_a_score_that_crosses_the_threshold_within_the_slack_still_matches():
    a = dets([[0, 0, 10, 10]], [0.27], [0])
    near = dets([[0, 0, 10, 10]], [0.23], [0])  # below conf, within the slack: a moved score, not a lost box
    far = dets([[0, 0, 10, 10]], [0.10], [0])  # below conf - slack: lost
    assert match(a, near, conf=0.25, slack=0.05).matched == 1
    m = match(a, far, conf=0.25, slack=0.05)
    assert m.matched == 0 and m.missing.tolist() == [0] and m.extra.size == 0
    low = dets([[0, 0, 10, 10]], [0.1], [0])  # below conf on both sides: not counted at all
    s = summarize([match(low, low, conf=0.25)])
    assert (s["matched"], s["missing"], s["extra"], s["match_rate"]) == (0, 0, 0, 1.0)


def test_greedy_by_score_takes_the_best_overlap():
    a = dets([[0, 0, 10, 10], [0, 0, 10, 9]], [0.9, 0.6], [0, 0])
    b = dets([[0, 0, 10, 9], [0, 0, 10, 10]], [0.6, 0.9], [0, 0])
    m = match(a, b, conf=0.25)
    assert sorted(map(tuple, m.pairs.tolist())) == [(0, 1), (1, 0)]
    assert m.ious.tolist() == pytest.approx([1.0, 1.0])


def test_worst_lists_differing_images_first():
    same = dets([[0, 0, 10, 10]], [0.9], [0])
    ms = [match(same, same, 0.25), match(same, dets([], [], []), 0.25)]
    w = worst(ms, ["same.jpg", "lost.jpg"])
    assert [x["image"] for x in w] == ["lost.jpg"] and w[0]["missing"] == 1


# ---------------------------------------------------------------- the deployment spelling
def test_deployment_spelling(tmp_path):
    from benchmarks.deployment import Deployment

    d = Deployment.parse("d0.xml@ov:bf16,threads=1,hint=throughput")
    assert (d.source, d.backend.name, d.precision) == ("d0.xml", "openvino", "bf16")
    assert d.runtime_options() == {"inference_precision": "bf16", "threads": 1, "hint": "throughput"}
    assert d.spelling == "d0.xml@openvino:bf16,threads=1,hint=throughput"
    assert Deployment.parse("m.onnx@openvino:f32").runtime_options() == {"inference_precision": "f32"}
    assert Deployment.parse("grpc://host:8001/d0").backend is None
    odd = tmp_path / "a@b.onnx"
    odd.write_bytes(b"")
    assert Deployment.parse(str(odd)).source == str(odd)  # an existing file is never split
    with pytest.raises(InputError, match="runtime precision"):
        Deployment.parse("d0.onnx@onnxruntime:int4")
    with pytest.raises(InputError, match="unknown backend"):
        Deployment.parse("d0.onnx@tflite")
    with pytest.raises(InputError, match="no runtime precision option"):
        Deployment.parse("d0.onnx@onnxruntime:bf16").runtime_options()
    # an option that repeats one of the command's own arguments is one line, not a TypeError
    with pytest.raises(InputError, match="score_threshold cannot be a deployment option"):
        Deployment.parse("x.onnx@onnxruntime,score_threshold=0.5").load(score_threshold=0.3)
    with pytest.raises(InputError, match="imgsz cannot be a deployment option"):
        Deployment.parse("d0@onnxruntime,imgsz=384").load(score_threshold=0.3, imgsz=512)


# ---------------------------------------------------------------- the command on the tiny model
@pytest.fixture(scope="module")
def folder(tmp_path_factory, images):
    out = tmp_path_factory.mktemp("cmp_images")
    for i, img in enumerate(images):
        cv2.imwrite(str(out / f"img{i}.jpg"), img)
    return out


# the random test weights score their boxes 0.37-0.41 (many clipped to zero area at the image edge): every one counts
CONF = "0.3"


def run_json(capsys, *argv) -> tuple[int, dict]:
    rc = main(["compare", *map(str, argv), "--json"])
    captured = capsys.readouterr()
    assert captured.out, f"exit {rc}: {captured.err[-2000:]}"
    return rc, json.loads(captured.out)  # --json prints only JSON


def test_same_model_two_backends_all_match(artifacts, folder, capsys):
    rc, r = run_json(
        capsys,
        artifacts["onnx"],
        f"{artifacts['openvino']}@openvino:f32",
        "--source",
        folder,
        "--conf",
        CONF,
        "--max-score-delta",
        "1e-3",
    )
    assert rc == 0 and r["passed"]
    m = r["match"]
    assert m["matched"] > 0 and m["missing"] == m["extra"] == 0 and m["match_rate"] == 1.0
    assert m["score_delta"]["max"] <= 1e-3 and m["iou_delta"]["max"] <= 1e-3
    assert r["a"]["backend"] == "onnxruntime" and r["b"]["executed_precision"] == "f32"
    assert r["environment"]["cpu_flags"] is not None


def test_planted_wrong_anchor_fails_with_exit_1(artifacts, folder, tmp_path, capsys):
    """A copy whose manifest says another anchor scale, re-written so it verifies: the boxes move and compare
    exits 1."""
    from edgedet.manifest import Manifest

    src = artifacts["onnx"]
    bad = tmp_path / src.name
    shutil.copy(src, bad)
    m = Manifest.read(src)
    m.derive(model={**m.model, "anchor_scale": m.model["anchor_scale"] * 0.5}).write(bad)
    Manifest.read(bad)  # verifies
    rc, r = run_json(capsys, src, bad, "--source", folder, "--conf", CONF)
    assert rc == 1 and not r["passed"]
    assert r["match"]["match_rate"] < 0.95
    assert any(c["check"] == "min_match" and not c["passed"] for c in r["checks"])


def test_ap_of_each_side_equals_eval(artifacts, tmp_path, capsys):
    from edgedet.data.synthetic import generate

    val = generate(tmp_path / "shapes", "val", 4, size=128, seed=1)
    # B runs OpenVINO's default precision (bf16 on BF16 CPUs): boxes may move, the AP is what is checked here
    argv = [artifacts["onnx"], artifacts["openvino"], "--data", val, "--max-ap-drop", "0.5", "--min-match", "none"]
    rc, r = run_json(capsys, *argv)
    assert rc == 0 and r["accuracy"]["images"] == 4
    assert main(["eval", "--model", str(artifacts["onnx"]), "--data", str(val), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert r["accuracy"]["a"]["AP"] == pytest.approx(stats["AP"], abs=1e-6)
    assert r["accuracy"]["ap_drop"] == pytest.approx(r["accuracy"]["a"]["AP"] - r["accuracy"]["b"]["AP"], abs=1e-5)


def test_an_ap_drop_over_the_tolerance_exits_1(artifacts, tmp_path, capsys):
    """Ground truth made from A's own detections (A scores AP near 1); B, A with its anchors halved, loses AP: only
    the AP tolerance is on, and it alone makes compare exit 1."""
    from edgedet.data.synthetic import generate
    from edgedet.manifest import Manifest

    val = generate(tmp_path / "shapes", "val", 4, size=128, seed=1)
    results = tmp_path / "a.json"
    argv = ["detect", "--model", str(artifacts["onnx"]), "--source", str(val.parent / "images")]
    assert main([*argv, "--conf", CONF, "--coco-json", str(results), "--data", str(val)]) == 0
    capsys.readouterr()
    gt = json.loads(val.read_text())
    cats = {c["id"] for c in gt["categories"]}  # the random tiny model predicts more classes than the set has
    found = [r for r in json.loads(results.read_text()) if r["category_id"] in cats and min(r["bbox"][2:]) > 1]
    assert found, "A detects nothing to build ground truth from"
    gt["annotations"] = [
        {**r, "id": i + 1, "area": r["bbox"][2] * r["bbox"][3], "iscrowd": 0} for i, r in enumerate(found)
    ]
    own = val.parent / "own.json"  # beside images/
    own.write_text(json.dumps(gt))
    bad = tmp_path / "bad" / artifacts["onnx"].name
    bad.parent.mkdir()
    shutil.copy(artifacts["onnx"], bad)
    m = Manifest.read(artifacts["onnx"])
    m.derive(model={**m.model, "anchor_scale": m.model["anchor_scale"] * 0.5}).write(bad)
    tolerances = ["--data", own, "--min-match", "none", "--max-score-delta", "none"]
    rc, r = run_json(capsys, artifacts["onnx"], bad, *tolerances, "--max-ap-drop", "0.05")
    drop = r["accuracy"]["ap_drop"]
    assert rc == 1 and not r["passed"] and drop > 0.05, r["accuracy"]
    assert [c["check"] for c in r["checks"] if not c["passed"]] == ["max_ap_drop"]
    rc, r = run_json(capsys, artifacts["onnx"], bad, *tolerances, "--max-ap-drop", str(drop + 0.01))
    assert rc == 0 and r["passed"]


def test_user_errors_exit_2(artifacts, folder, tmp_path, capsys):
    assert main(["compare", str(artifacts["onnx"]), str(artifacts["onnx"])]) == 2  # nothing to compare on
    assert "--source" in capsys.readouterr().err
    assert main(["compare", str(artifacts["onnx"]), str(tmp_path / "none.onnx"), "--source", str(folder)]) == 2
    assert (
        main(["compare", f"{artifacts['onnx']}@onnxruntime:bf16", str(artifacts["onnx"]), "--source", str(folder)]) == 2
    )
    assert "no runtime precision option" in capsys.readouterr().err


def test_text_report_and_out_file(artifacts, folder, tmp_path, capsys):
    out = tmp_path / "cmp.json"
    argv = ["compare", str(artifacts["onnx"]), str(artifacts["onnx_graph"]), "--source", str(folder), "--conf", CONF]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "matched" in text and "PASSED" in text
    argv = ["compare", str(artifacts["onnx"]), str(artifacts["onnx"]), "--source", str(folder), "--out", str(out)]
    assert main(argv) == 0
    assert json.loads(out.read_text())["match"]["score_delta"]["max"] == 0.0
