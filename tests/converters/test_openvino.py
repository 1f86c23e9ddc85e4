"""OpenVINO IR: FP32/FP16 IR, u8 BGR input preprocessing, benchmark_app accepts ONNX and IR."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

ov = pytest.importorskip("openvino")

from edgedet.converters.openvino_ir import convert_to_openvino
from edgedet.manifest import Manifest
from edgedet.runtimes import Detector


def test_fp32_ir_keeps_fp32_weights(artifacts):
    xml = artifacts["openvino"]
    assert xml.with_suffix(".bin").is_file()
    m = Manifest.read(xml)
    assert m.precision == "fp32" and m.artifact.extra_files == [xml.with_suffix(".bin").name]
    model = ov.Core().read_model(str(xml))
    consts = [op for op in model.get_ordered_ops() if op.get_type_name() == "Constant"]
    assert not any(c.get_element_type() == ov.Type.f16 for c in consts)


def test_fp16_ir_and_u8_input(tmp_path, artifacts, images):
    fp16 = convert_to_openvino(artifacts["onnx"], tmp_path / "fp16.xml", precision="fp16")
    consts = [op for op in ov.Core().read_model(str(fp16)).get_ordered_ops() if op.get_type_name() == "Constant"]
    assert any(c.get_element_type() == ov.Type.f16 for c in consts)
    assert fp16.with_suffix(".bin").stat().st_size < artifacts["openvino"].with_suffix(".bin").stat().st_size * 0.6

    u8 = convert_to_openvino(artifacts["onnx"], tmp_path / "u8.xml", u8_bgr_input=True)
    m = Manifest.read(u8)
    assert m.input.dtype == "uint8" and m.input.layout == "NHWC" and m.input.normalize == "in_graph"
    ref = Detector.load(artifacts["openvino"], inference_precision="f32")(images[0], score_threshold=0.3)
    got = Detector.load(u8, inference_precision="f32")(images[0], score_threshold=0.3)
    # Same detections up to the u8 rounding of the letterbox fill colour.
    assert len(got) == len(ref) > 0
    assert (got.class_ids == ref.class_ids).mean() > 0.9
    assert np.abs(got.scores - ref.scores).max() < 0.02


# benchmark_app ships with the openvino wheel, beside this interpreter (the venv may not be on PATH).
BENCHMARK_APP = shutil.which(
    "benchmark_app", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
)


@pytest.mark.skipif(BENCHMARK_APP is None, reason="OpenVINO benchmark_app not installed")
@pytest.mark.parametrize("key", ["onnx", "openvino", "openvino_graph"])
def test_benchmark_app_accepts_artifacts(artifacts, key):
    r = subprocess.run(
        [BENCHMARK_APP, "-m", str(artifacts[key]), "-d", "CPU", "-niter", "4", "-hint", "latency"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "Throughput" in r.stdout
