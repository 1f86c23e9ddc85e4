"""INT8 workflow on the tiny model: calibration sources and diagnostics, range cache, Q/DQ forms, artifacts."""
import json
import warnings

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgedet.converters.int8.calibration import load_calibration
from edgedet.converters.int8.pipeline import CalibrateRequest, calibrate
from edgedet.converters.trt_check import check_tensorrt_onnx
from edgedet.errors import InputError
from edgedet.manifest import Manifest
from edgedet.runtimes import Detector


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory, images):
    d = tmp_path_factory.mktemp("calib")
    for i in range(12):
        img = images[i % len(images)]
        cv2.imwrite(str(d / f"{i:03d}.jpg"), np.roll(img, i * 7, axis=1))
    return d


@pytest.fixture(scope="module")
def int8(tmp_path_factory, artifacts, calib_dir):
    out = tmp_path_factory.mktemp("int8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = calibrate(CalibrateRequest(model=str(artifacts["onnx"]), calib=str(calib_dir), out=str(out),
                                            backends=("onnxruntime", "tensorrt", "openvino")), log=lambda m: None)
    return {r["backend"]: r for r in report["artifacts"]}, report, out


def _qdq_zero_points(path):
    m = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    return [inits[n.input[2]] for n in m.graph.node if n.op_type == "QuantizeLinear"]


def test_onnxruntime_form_is_u8s8(int8):
    rows, _, _ = int8
    zps = _qdq_zero_points(rows["onnxruntime"]["artifact"])
    assert zps and all(z.dtype == np.uint8 for z in zps)


def test_tensorrt_form_is_symmetric_int8_and_passes_check(int8):
    rows, _, _ = int8
    path = rows["tensorrt"]["artifact"]
    zps = _qdq_zero_points(path)
    assert zps and all(z.dtype == np.int8 and not z.any() for z in zps)
    rep = check_tensorrt_onnx(path, 1, 1)
    assert rep.ok, rep.to_dict()["findings"]
    assert rep.qdq["nodes"] > 0 and rep.qdq["nonzero_zero_point"] == 0


def test_int8_artifacts_run_and_stay_close(int8, artifacts, images):
    rows, report, _ = int8
    ref = Detector.load(artifacts["onnx"])(images[0], score_threshold=0.3)
    for backend, row in rows.items():
        m = Manifest.read(row["artifact"])
        assert m.precision == "int8" and m.calibration["data_hash"] == report["calibration"]["data_hash"]
        det = Detector.load(row["artifact"], backend="onnxruntime" if backend == "tensorrt" else None)
        got = det(images[0], score_threshold=0.3)
        assert abs(len(got) - len(ref)) <= max(2, len(ref) // 3)


def test_range_cache_reused_and_invalidated(int8, artifacts, calib_dir, tmp_path, images):
    logs = []
    calibrate(CalibrateRequest(model=str(artifacts["onnx"]), calib=str(calib_dir), out=str(tmp_path / "a"),
                               backends=("onnxruntime",)), log=logs.append)
    assert "ranges cached" in logs[0]
    other = tmp_path / "other"
    other.mkdir()
    cv2.imwrite(str(other / "x.jpg"), images[1])
    logs.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calibrate(CalibrateRequest(model=str(artifacts["onnx"]), calib=str(other), out=str(tmp_path / "b"),
                                   backends=("onnxruntime",)), log=logs.append)
    assert "ranges computed" in logs[0]


def test_calibration_inputs(tmp_path, images):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="has no images"):
        load_calibration(tmp_path / "empty")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    cv2.imwrite(str(mixed / "ok.jpg"), images[0])
    (mixed / "broken.jpg").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        cal = load_calibration(mixed)
    assert len(cal.frames) == 1
    with pytest.warns(UserWarning, match="less than half the network input"):
        load_calibration(mixed, input_size=(2048, 2048))
    video = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(5):
        w.write(np.full((48, 64, 3), i * 40, np.uint8))
    w.release()
    with pytest.warns(UserWarning, match="ended after 5 frames"):
        cal = load_calibration(video, num=20, every=1)
    assert len(cal.frames) == 5
    with pytest.raises(InputError, match="not a folder, a video"):
        load_calibration(tmp_path / "model.bin")
