"""`edgedet export --format frigate`: the model, labelmap and config block pass a contract test written from
Frigate's own code (none of it copied here), run with the libraries Frigate's detectors use.

From frigate/detectors/detector_config.py: ModelConfig's fields and enum values. From object_detection/base.py:
the detector gets a (1, height, width, 3) uint8 region, transposed only for input_tensor nchw and scaled only for
input_dtype float; detect() skips labels outside the labelmap and stops at the first score under the threshold.
From detectors/plugins/openvino.py (model_type ssd): one input, one output of static shape [1, 1, N, 7], the
first 20 rows read as (_, class, score, x_min, y_min, x_max, y_max) -> [class, score, y_min, x_min, y_max,
x_max]. From detectors/plugins/onnx.py (model_type yolonas): onnxruntime; output 0's rows read as (_, x_min,
y_min, x_max, y_max, score, class), stopping at class < 0, divided by width/height. From util/builtin.py
load_labels: 91 'unknown' entries, then line i names class i."""

import cv2
import numpy as np
import pytest

yaml = pytest.importorskip("yaml")

# frigate/detectors/detector_config.py
MODEL_FIELDS = {
    "path", "labelmap_path", "width", "height", "labelmap", "attributes_map", "input_tensor",
    "input_pixel_format", "input_dtype", "model_type",
}  # fmt: skip
ENUMS = {
    "input_tensor": {"nchw", "nhwc", "hwnc", "hwcn"},
    "input_pixel_format": {"rgb", "bgr", "yuv"},
    "input_dtype": {"float", "float_denorm", "int"},
    "model_type": {"dfine", "rfdetr", "ssd", "yolox", "yolonas", "yolo-generic"},
}
SUPPORTED = {  # the model types each detector plugin handles
    "openvino": {"dfine", "rfdetr", "ssd", "yolonas", "yolo-generic", "yolox"},
    "onnx": {"dfine", "rfdetr", "yolonas", "yolo-generic", "yolox"},
}
THRESHOLD = 0.3


@pytest.fixture(scope="module", params=["openvino", "onnxruntime"])
def exported(request, tmp_path_factory, test_weights):
    from edgedet.converters.pipeline import BuildRequest, export_artifact

    out = tmp_path_factory.mktemp(f"frigate_{request.param}")
    block = export_artifact(
        BuildRequest("test", "frigate", weights=str(test_weights), options={"backend": request.param}), out
    )
    return block.parent, yaml.safe_load(block.read_text())


def _load_labels(path):
    labels = {i: "unknown" for i in range(91)}
    labels.update({i: line.strip() for i, line in enumerate(path.read_text().splitlines())})
    return labels


def _ssd_openvino(model_path, tensor):
    import openvino as ov

    compiled = ov.Core().compile_model(str(model_path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    assert len(compiled.inputs) == 1 and len(compiled.outputs) == 1
    shape = compiled.outputs[0].get_shape()
    assert shape[0] == 1 and shape[1] == 1 and shape[3] == 7
    results = compiled({compiled.inputs[0].get_any_name(): tensor})[compiled.outputs[0]][0][0]
    detections = np.zeros((20, 6), np.float32)
    for i, (_, class_id, score, xmin, ymin, xmax, ymax) in enumerate(results):
        if i == 20:
            break
        detections[i] = [class_id, float(score), ymin, xmin, ymax, xmax]
    return detections


def _yolonas_onnx(model_path, tensor, w, h):
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path))
    predictions = session.run(None, {session.get_inputs()[0].name: tensor})[0]
    detections = np.zeros((20, 6), np.float32)
    for i, prediction in enumerate(predictions):
        if i == 20:
            break
        (_, x_min, y_min, x_max, y_max, confidence, class_id) = prediction
        if class_id < 0:
            break
        detections[i] = [class_id, confidence, y_min / h, x_min / w, y_max / h, x_max / w]
    return detections


def _detect(raw, labels, threshold):
    out = []
    for d in raw:
        if int(d[0]) < 0 or int(d[0]) >= len(labels):
            continue
        if d[1] < threshold:
            break
        out.append((labels[int(d[0])], float(d[1]), (d[2], d[3], d[4], d[5])))
    return out


def test_config_block_is_frigates(exported):
    folder, block = exported
    ((name, detector),) = block["detectors"].items()
    model = block["model"]
    assert set(model) <= MODEL_FIELDS
    for key, allowed in ENUMS.items():
        assert model[key] in allowed
    assert model["model_type"] in SUPPORTED[detector["type"]]
    model_file = folder / model["path"].rsplit("/", 1)[1]
    assert model_file.is_file() and (folder / model["labelmap_path"].rsplit("/", 1)[1]).is_file()


def test_model_passes_frigates_contract(exported, images):
    from edgedet.runtimes import Detector

    folder, block = exported
    model = block["model"]
    w, h = model["width"], model["height"]
    model_file = folder / model["path"].rsplit("/", 1)[1]
    labels = _load_labels(folder / model["labelmap_path"].rsplit("/", 1)[1])
    run = {
        "ssd": lambda t: _ssd_openvino(model_file, t),
        "yolonas": lambda t: _yolonas_onnx(model_file, t, w, h),
    }[model["model_type"]]
    options = {"inference_precision": "f32"} if model_file.suffix == ".xml" else {}
    compared = 0
    with Detector.load(model_file, score_threshold=THRESHOLD, **options) as det:
        for img in images:
            side = min(img.shape[:2])  # a square region, resized to the model size (no letterbox), as Frigate does
            region = cv2.resize(img[:side, :side], (w, h), interpolation=cv2.INTER_LINEAR)
            assert model["input_pixel_format"] == "bgr" and model["input_tensor"] == "nhwc"
            tensor = np.expand_dims(region, 0)  # (1, h, w, 3) uint8: input_dtype int leaves it as is
            found = _detect(run(tensor), labels, THRESHOLD)
            mine = det(region)
            assert 0 < len(found) == min(20, len(mine))
            for (label, score, (y1, x1, y2, x2)), box, s, c in zip(found, mine.xyxy, mine.scores, mine.class_ids):
                assert label == det.class_names[c] and score == pytest.approx(float(s), abs=1e-5)
                np.testing.assert_allclose([x1 * w, y1 * h, x2 * w, y2 * h], box, atol=1e-3)
            compared += len(found)
    assert compared >= 30


def test_classes_frigate_cannot_take_exit_2_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    from edgedet.cli import main
    from edgedet.converters import frigate

    monkeypatch.setattr(frigate, "MAX_CLASSES", 80)
    rc = main(["export", "--model", "test", "--format", "frigate", "--backend", "onnxruntime", "--out", str(tmp_path)])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert rc == 2 and len(errors) == 1 and "90 classes; Frigate (labelmap.txt) accepts at most 80" in errors[0]
    assert list(tmp_path.iterdir()) == []
