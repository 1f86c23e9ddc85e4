"""One CLI: the three entry points list the same commands; detect on images takes --jsonl; a damaged manifest
is one line and exit 2; --save never writes over an input."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgedet.cli import COMMANDS, main
from edgedet.manifest import manifest_path

BIN = Path(sys.executable).parent


def _commands(help_text: str) -> list[str]:
    m = re.search(r"\{([a-z,]+)\}", help_text)
    return m.group(1).split(",") if m else []


@pytest.mark.parametrize(
    "argv", [[str(BIN / "edgedet")], [sys.executable, "-m", "edgedet"], [sys.executable, "-m", "edgedet.cli"]]
)
def test_three_entry_points_list_every_command(argv):
    if not Path(argv[0]).exists():
        pytest.fail(f"console script {argv[0]} is not installed (pip install -e .)")
    r = subprocess.run(argv + ["--help"], capture_output=True, text=True, check=True)
    assert _commands(r.stdout) == list(COMMANDS)
    for name in COMMANDS:  # and each command's own help runs
        r = subprocess.run(argv + [name, "--help"], capture_output=True, text=True)
        assert r.returncode == 0 and "usage: edgedet" in r.stdout, (name, r.stderr)


def test_console_script_reports_without_traceback():
    r = subprocess.run([str(BIN / "edgedet"), "info", "--model", "bogus"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "unknown model 'bogus'" in r.stderr


def _image(path: Path, seed: int = 0) -> Path:
    img = np.random.default_rng(seed).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    cv2.imwrite(str(path), img)
    return path


def test_detect_one_image_to_jsonl(tmp_path, artifacts):
    img = _image(tmp_path / "a.jpg")
    out = tmp_path / "out.jsonl"
    assert (
        main(["detect", "--model", str(artifacts["onnx"]), "--source", str(img), "--jsonl", str(out), "--conf", "0.3"])
        == 0
    )
    lines = out.read_text().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert rec["source"] == str(img) and len(rec["boxes"]) == len(rec["scores"]) > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_manifest_with_a_key_removed_is_one_line_exit_2(tmp_path, artifacts, capsys):
    model = tmp_path / "m.onnx"
    shutil.copy(artifacts["onnx"], model)
    data = json.loads(manifest_path(artifacts["onnx"]).read_text())
    del data["input"]["name"]
    manifest_path(model).write_text(json.dumps(data))
    img = _image(tmp_path / "a.jpg")
    assert main(["detect", "--model", str(model), "--source", str(img)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing key 'input.name'" in err[0] and str(model) in err[0]
    data["input"]["name"] = 7
    manifest_path(model).write_text(json.dumps(data))
    assert main(["detect", "--model", str(model), "--source", str(img)]) == 2
    assert "key 'input.name' has the wrong type" in capsys.readouterr().err


def test_save_never_overwrites_inputs(tmp_path, artifacts, capsys):
    src = tmp_path / "col"
    src.mkdir()
    a_jpg, a_png = _image(src / "a.jpg", 1), _image(src / "a.png", 2)
    before = a_jpg.read_bytes()
    assert main(["detect", "--model", str(artifacts["onnx"]), "--source", str(src), "--save", str(src)]) == 2
    assert "is the source folder" in capsys.readouterr().err and a_jpg.read_bytes() == before
    out = tmp_path / "vis"
    assert main(["detect", "--model", str(artifacts["onnx"]), "--source", str(src), "--save", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_jpg.jpg", "a_png.jpg"]  # one output per input
    assert main(["detect", "--model", str(artifacts["onnx"]), "--source", str(a_png), "--save", str(src)]) == 2
    assert "is the source folder" in capsys.readouterr().err and a_jpg.read_bytes() == before


def test_unknown_backend_and_bad_option_are_one_line(tmp_path, artifacts, capsys):
    img = _image(tmp_path / "a.jpg")
    assert main(["detect", "--model", str(artifacts["onnx"]), "--source", str(img), "--backend", "tflite"]) == 2
    assert "unknown backend 'tflite'" in capsys.readouterr().err
    assert main(["check", str(artifacts["onnx"]), "--backend", "onnxruntime"]) == 2
    assert "has no static check" in capsys.readouterr().err


def test_detect_hint_is_passed_or_said_not_to_apply(artifacts, capsys):
    from argparse import Namespace

    from edgedet.cli.detect import _hint

    args = dict(backend=None, device=None, weights=None, imgsz=None)
    assert _hint(Namespace(model=str(artifacts["onnx"]), hint=None, **args)) == {"hint": "THROUGHPUT"}
    assert _hint(Namespace(model=str(artifacts["openvino"]), hint="latency", **args)) == {"hint": "LATENCY"}
    assert _hint(Namespace(model=str(artifacts["torch"]), hint="latency", **args)) == {}
    assert "backend torch has no performance hint; --hint latency does not apply" in capsys.readouterr().err
    assert _hint(Namespace(model=str(artifacts["torch"]), hint=None, **args)) == {}
    assert capsys.readouterr().err == ""


def test_a_folder_named_like_a_model_does_not_shadow_it(tmp_path, monkeypatch, artifacts):
    from edgedet.api import is_model_name

    monkeypatch.chdir(tmp_path)
    (tmp_path / "d0").mkdir()  # e.g. an earlier `edgedet export --out d0`
    assert is_model_name("d0") and is_model_name("lite2")
    assert not is_model_name(str(artifacts["onnx"])) and not is_model_name("grpc://host:8001/d0")
    (tmp_path / "d1").write_text("a file")  # a file of that name is what the user means
    assert not is_model_name("d1")
