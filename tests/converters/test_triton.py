"""Triton model repositories: layout, config.pbtxt parsed with Triton's own ModelConfig schema, tensors equal to
the artifact's, and the inner artifact runs."""

import json

import pytest

from edgedet.cli import main
from edgedet.manifest import Manifest
from edgedet.runtimes import Detector

pytest.importorskip("tritonclient.grpc.model_config_pb2")
from google.protobuf import text_format  # noqa: E402
from tritonclient.grpc import model_config_pb2  # noqa: E402


@pytest.mark.parametrize(
    "backend, model_file, line",
    [("onnxruntime", "model.onnx", 'backend: "onnxruntime"'), ("openvino", "model.xml", 'backend: "openvino"')],
)
def test_repository_for_cpu_backends(tmp_path, test_weights, backend, model_file, line, capsys):
    assert (
        main(
            [
                "export",
                "--model",
                "test",
                "--weights",
                str(test_weights),
                "--format",
                "triton",
                "--backend",
                backend,
                "--max-batch",
                "8",
                "--out",
                str(tmp_path / "repo"),
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    model = tmp_path / "repo" / "test"
    assert out["artifact"] == str(model / "config.pbtxt")
    text = (model / "config.pbtxt").read_text()
    cfg = text_format.Parse(text, model_config_pb2.ModelConfig())
    assert line in text and cfg.max_batch_size == 8 and cfg.dynamic_batching.preferred_batch_size
    inner = model / "1" / model_file
    m = Manifest.read(inner)
    assert [(i.name, list(i.dims)) for i in cfg.input] == [(m.input.name, list(m.input.shape[1:]))]
    assert [o.name for o in cfg.output] == m.outputs == ["num_detections", "boxes", "scores", "classes"]
    assert (model / "labels.txt").read_text().splitlines() == m.class_names
    assert Manifest.read(model / "config.pbtxt").extra["triton_backend"] == backend
    Detector.load(inner).close()


def test_tensorrt_repository_without_tensorrt_keeps_onnx_and_trtexec_line(tmp_path, test_weights):
    assert (
        main(
            [
                "export",
                "--model",
                "test",
                "--weights",
                str(test_weights),
                "--format",
                "triton",
                "--backend",
                "trt",
                "--out",
                str(tmp_path / "repo"),
            ]
        )
        == 0
    )
    model = tmp_path / "repo" / "test"
    text = (model / "config.pbtxt").read_text()
    assert 'platform: "tensorrt_plan"' in text and "KIND_GPU" in text
    assert (model / "1" / "model.onnx").is_file()
    note = (model / "1" / "BUILD_ENGINE.txt").read_text()
    assert "trtexec" in note and "--saveEngine=1/model.plan" in note and "--stronglyTyped" in note


def test_backend_option_belongs_to_the_triton_format(tmp_path, test_weights, capsys):
    assert main(["export", "--model", "test", "--format", "onnx", "--backend", "openvino", "--out", str(tmp_path)]) == 2
    assert "unknown option 'backend' for the onnx builder" in capsys.readouterr().err


def test_class_names_with_line_breaks_are_refused(tmp_path, test_weights, capsys):
    """labels.txt is read line by line: a class name with a newline made 7 lines of 5 classes, shifting Triton's
    labels. Such a name is refused, naming the class, and nothing is written."""
    import torch

    ckpt = tmp_path / "named.pth"
    names = ["person", "traffic\nlight"] + [f"c{i}" for i in range(88)]
    torch.save({"state_dict": torch.load(test_weights, weights_only=True), "class_names": names}, ckpt)
    args = ["export", "--model", "test", "--weights", str(ckpt), "--format", "triton", "--backend", "onnxruntime"]
    assert main([*args, "--out", str(tmp_path / "repo")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # one line, after the progress line
    assert last.startswith("edgedet export: error: class 1 name 'traffic\\nlight' contains a line break")
    assert not (tmp_path / "repo" / "test" / "labels.txt").exists()
