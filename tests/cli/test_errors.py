"""CLI behaviour: one clear error line and exit code 2 for bad input; JSON output."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edgedet.cli import main
from edgedet.model import create_model


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1] if err else ""


def test_unknown_model_exit_2_one_line(capsys):
    assert main(["info", "--model", "d9"]) == 2
    line = _err(capsys)
    assert line.startswith("edgedet info: error: unknown model 'd9'") and "Traceback" not in line


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--model", "test", "--iters", "0"],
        ["export", "--model", "test"],
        ["export", "--model", "test", "--out", "x", "--batch", "0"],
    ],
)
def test_argument_errors_exit_2(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2


def test_missing_corrupt_and_wrong_weights(tmp_path, capsys):
    out = str(tmp_path / "o")
    assert main(["export", "--model", "test", "--weights", str(tmp_path / "none.pth"), "--out", out]) == 2
    assert "weights file not found" in _err(capsys)
    (tmp_path / "bad.pth").write_bytes(b"garbage")
    assert main(["export", "--model", "test", "--weights", str(tmp_path / "bad.pth"), "--out", out]) == 2
    assert "not a valid PyTorch checkpoint" in _err(capsys)
    torch.save(create_model("lite0").state_dict(), tmp_path / "lite0.pth")
    assert main(["export", "--model", "test", "--weights", str(tmp_path / "lite0.pth"), "--out", out]) == 2
    assert "do not match model 'test'" in _err(capsys)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_detect_unreadable_image_and_json(tmp_path, artifacts, capsys):
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    assert main(["detect", "--model", str(artifacts["onnx"]), "--source", str(tmp_path / "bad.jpg")]) == 2
    assert "cannot read image" in _err(capsys)
    img = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "ok.png"), img)
    assert (
        main(
            [
                "detect",
                "--model",
                str(artifacts["onnx"]),
                "--source",
                str(tmp_path),
                "--json",
                "--save",
                str(tmp_path / "vis"),
                "--conf",
                "0.3",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert [r["image"].endswith("ok.png") for r in out["results"]] == [True]
    assert (tmp_path / "vis" / "ok.jpg").is_file()
    dets = out["results"][0]["detections"]
    assert len(dets["boxes"]) == len(dets["scores"]) > 0 and min(dets["scores"]) >= 0.3


def test_usage_mistakes_are_one_line(capsys):
    from edgedet.cli import main

    with pytest.raises(SystemExit) as e:
        main(["serve", "--model", "x.onnx", "--port", "99999"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "expected a port in 1-65535" in err
    assert "usage:" not in err and "edgedet serve --help" in err


def test_detect_folder_skips_bombs_and_lists_them_in_json(tmp_path, artifacts, capsys):
    """A decompression bomb and an image over OpenCV's own limit (which raised cv2.error and aborted the run,
    JSONL discarded) are skipped, counted and listed under 'skipped'; the good image is detected."""
    from tests.hostile import jpeg_bomb, png_header_only

    src = tmp_path / "src"
    src.mkdir()
    cv2.imwrite(str(src / "a_ok.png"), np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8))
    (src / "b_bomb.jpg").write_bytes(jpeg_bomb())
    (src / "c_over_opencv.png").write_bytes(png_header_only(40000, 40000))
    jsonl = tmp_path / "o.jsonl"
    args = ["detect", "--model", str(artifacts["onnx"]), "--source", str(src), "--json", "--jsonl", str(jsonl)]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert [Path(r["image"]).name for r in out["results"]] == ["a_ok.png"]
    assert [Path(s["image"]).name for s in out["skipped"]] == ["b_bomb.jpg", "c_over_opencv.png"]
    assert all("cannot read image" in s["error"] for s in out["skipped"])
    assert "pixel budget" in out["skipped"][0]["error"]
    assert [json.loads(line)["source"] for line in jsonl.read_text().splitlines()] == [str(src / "a_ok.png")]
