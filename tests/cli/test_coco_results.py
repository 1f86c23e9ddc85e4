"""COCO results: `edgedet eval --save-json` and `edgedet detect --coco-json --data` write what pycocotools'
loadRes reads, and COCOeval on that file gives `edgedet eval`'s AP (the reference model on a held-out synthetic
split, so the AP is far from 0)."""

import contextlib
import io
import json
from pathlib import Path

import pytest

pytest.importorskip("pycocotools")

from edgedet.cli import main  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[1] / "assets" / "reference_d0_shapes_fp16.pth"
STAT_KEYS = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large"]


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    from edgedet.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("shapes"), "val", 24, size=256, seed=11)


def _run(argv) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return json.loads(out.getvalue())


def _cocoeval(ann: Path, results: Path) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann))
        ev = COCOeval(gt, gt.loadRes(str(results)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [round(float(max(v, 0.0)), 5) for v in ev.stats[:6]]


MODEL = ["--model", "d0", "--weights", str(REFERENCE), "--imgsz", "256", "--backend", "onnxruntime"]


def test_eval_save_json_gives_the_same_ap_through_pycocotools(split, tmp_path):
    results = tmp_path / "results.json"
    stats = _run(["eval", *MODEL, "--data", str(split), "--save-json", str(results), "--json"])
    assert stats["AP"] > 0.3 and stats["results_json"] == str(results)
    entries = json.loads(results.read_text())
    assert len(entries) == stats["num_detections"] > 0
    assert set(entries[0]) == {"image_id", "category_id", "bbox", "score"} and len(entries[0]["bbox"]) == 4
    # edgedet eval reports COCOeval's figures rounded to 5 decimals: the file gives them exactly
    assert _cocoeval(split, results) == [stats[k] for k in STAT_KEYS]


def test_detect_coco_json_uses_the_annotation_ids(split, tmp_path):
    results = tmp_path / "detect.json"
    eval_stats = _run(["eval", *MODEL, "--data", str(split), "--json"])
    images = split.parent / "images"
    _run(["detect", *MODEL, "--source", str(images), "--conf", "0.001", "--coco-json", str(results), "--data",
          str(split), "--json"])  # fmt: skip
    entries = json.loads(results.read_text())
    ann = json.loads(split.read_text())
    assert {e["image_id"] for e in entries} <= {im["id"] for im in ann["images"]}
    assert {e["category_id"] for e in entries} <= {c["id"] for c in ann["categories"]}
    assert _cocoeval(split, results)[0] == pytest.approx(eval_stats["AP"], abs=1e-6)


def test_coco_json_refused_for_streams_and_without_it(tmp_path, capsys):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    rc = main(["detect", "--model", "x.onnx", "--source", "0", "--coco-json", str(tmp_path / "r.json")])
    assert rc == 2 and "apply to images" in capsys.readouterr().err
