"""`edgedet export --format deepstream`: the config passes the schema of Gst-nvinfer's documented keys, and the
ONNX's outputs, read exactly as DeepStream's stock NvDsInferParseCustomEfficientNMS reads them, are the Detector's
detections. The parser contract (DeepStream's sources/libs/nvdsinfer_customparser/nvdsinfer_custombboxparser.cpp):
four output buffers in order, [0] int32 keep count, [1] float boxes x1 y1 x2 y2 in network pixels (asserted >= 2,
i.e. not normalised), [2] float scores, [3] int32 classes (< num-detected-classes); a detection is kept when its
score >= pre-cluster-threshold; left/top/width/height are clipped to the network size - 1."""

import configparser

import cv2
import numpy as np
import pytest

from edgedet.converters.deepstream import CONFIG_NAME, LABELS_NAME, STOCK_PARSER, engine_name, validate_config
from edgedet.errors import InputError


@pytest.fixture(scope="module")
def folder(tmp_path_factory, test_weights):
    from edgedet.converters.pipeline import BuildRequest, export_artifact

    out = tmp_path_factory.mktemp("ds")
    config = export_artifact(BuildRequest("test", "deepstream", precision="fp16", weights=str(test_weights)), out)
    assert config.name == CONFIG_NAME
    return config.parent


def _config(folder):
    p = configparser.ConfigParser(interpolation=None)
    p.optionxform = str
    p.read(folder / CONFIG_NAME)
    return p


def test_config_passes_the_nvinfer_schema(folder):
    import onnx

    assert validate_config((folder / CONFIG_NAME).read_text()) == []
    prop = _config(folder)["property"]
    model = onnx.load(folder / prop["onnx-file"])
    labels = (folder / prop["labelfile-path"]).read_text().splitlines()
    assert int(prop["num-detected-classes"]) == len(labels) == 90
    assert prop["parse-bbox-func-name"] == STOCK_PARSER and prop["custom-lib-path"].endswith(
        "libnvds_infercustomparser.so"
    )
    assert (prop["cluster-mode"], prop["maintain-aspect-ratio"], prop["symmetric-padding"]) == ("4", "1", "0")
    assert (prop["network-mode"], prop["batch-size"], prop["net-scale-factor"]) == ("2", "1", "1.0")
    assert prop["model-engine-file"] == engine_name("test.onnx", 1, 0, "fp16") == "test.onnx_b1_gpu0_fp16.engine"
    assert prop["output-blob-names"].split(";") == [o.name for o in model.graph.output]
    assert [i.name for i in model.graph.input] == ["images"]
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 128, 128] and prop["infer-dims"] == "3;128;128"


@pytest.mark.parametrize(
    "line, problem",
    [
        ("cluster-mode=7", "must be one of"),
        ("network-mode=fast", "must be int"),
        ("maintain-aspect-ratio=yes", "must be 0 or 1"),
        ("net-scale-factor=0", "must be > 0"),
        ("output-blob-name=boxes", "unknown key"),
        ("offsets=1;x;3", "must be float-list"),
    ],
)
def test_schema_refuses_what_nvinfer_does_not_document(folder, line, problem):
    text = (folder / CONFIG_NAME).read_text().replace("[class-attrs-all]", f"{line}\n\n[class-attrs-all]", 1)
    key = line.split("=")[0]
    text = text.replace(f"\n{key}=", f"\n#{key}=", 1) if text.count(f"\n{key}=") > 1 else text
    found = validate_config(text)
    assert any(problem in p for p in found), found
    assert any("lacks batch-size" in p for p in validate_config(text.replace("batch-size=1", "")))
    assert any("not a Gst-nvinfer group" in p for p in validate_config(text + "[class-attrs-x]\ntopk=1\n"))


def _nvinfer_input(img, hw):
    """What nvinfer hands the engine: scaled to fit, padded right and bottom with black (maintain-aspect-ratio=1,
    symmetric-padding=0), RGB (model-color-format=0), y = net-scale-factor * (x - offsets) = x, planar float."""
    h, w = hw
    scale = min(h / img.shape[0], w / img.shape[1])
    nh, nw = round(img.shape[0] * scale), round(img.shape[1] * scale)
    canvas = np.zeros((h, w, 3), np.uint8)
    canvas[:nh, :nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32).transpose(2, 0, 1)[None], scale


def _stock_parser(layers, net_w, net_h, threshold, num_classes):
    """NvDsInferParseCustomEfficientNMS, line by line: buffers by position, not by name."""
    assert len(layers) == 4, "Mismatch in the number of output buffers"
    keep_count = np.frombuffer(layers[0].tobytes(), np.int32)
    bboxes = np.frombuffer(layers[1].tobytes(), np.float32)
    scores = np.frombuffer(layers[2].tobytes(), np.float32)
    classes = np.frombuffer(layers[3].tobytes(), np.uint32)
    objects = []
    if keep_count[0] > 0:
        assert not bboxes.max() < 2.0  # boxes in network pixels
        for i in range(keep_count[0]):
            if scores[i] < threshold:
                continue
            assert classes[i] < num_classes
            left, top = bboxes[4 * i], bboxes[4 * i + 1]
            width, height = bboxes[4 * i + 2] - left, bboxes[4 * i + 3] - top
            clip = lambda v, hi: min(max(v, 0), hi)  # noqa: E731
            objects.append(
                (
                    int(classes[i]),
                    float(scores[i]),
                    clip(left, net_w - 1),
                    clip(top, net_h - 1),
                    clip(width, net_w - 1),
                    clip(height, net_h - 1),
                )
            )
    return objects


def test_outputs_read_as_the_stock_parser_reads_them(folder, images):
    import onnxruntime as ort

    from edgedet.runtimes import Detector

    prop, attrs = _config(folder)["property"], _config(folder)["class-attrs-all"]
    onnx_path = folder / prop["onnx-file"]
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = prop["output-blob-names"].split(";")
    threshold = float(attrs["pre-cluster-threshold"])
    checked = 0
    clip = lambda v, hi: np.minimum(np.maximum(v, 0), hi)  # noqa: E731
    with Detector.load(onnx_path, score_threshold=threshold) as det:
        for img in images:  # square and non-square: the letterbox padding is DeepStream's black on both sides
            x, scale = _nvinfer_input(img, (128, 128))
            batch, _ = det.preprocess([img])
            np.testing.assert_allclose(batch, x, atol=1e-4)  # the Detector feeds this ONNX what nvinfer feeds it
            layers = sess.run(names, {"images": x})
            objects = _stock_parser(layers, 128, 128, threshold, int(prop["num-detected-classes"]))
            boxes, scores, classes = det.post.raw(det.infer(batch), 0, threshold)  # network pixels
            assert len(objects) == len(scores) > 0
            for (cls, score, left, top, width, height), box, s, c in zip(objects, boxes, scores, classes):
                assert cls == c and score == pytest.approx(float(s), abs=1e-6)
                want = [box[0], box[1], box[2] - box[0], box[3] - box[1]]
                np.testing.assert_allclose([left, top, width, height], clip(np.array(want), 127), atol=1e-3)
            checked += len(objects)
    assert checked > 30


def test_classes_the_consumer_cannot_take_are_refused_and_nothing_is_written(tmp_path, test_weights, monkeypatch):
    from edgedet.converters import deepstream
    from edgedet.converters.pipeline import BuildRequest, export_artifact

    monkeypatch.setattr(deepstream, "MAX_CLASSES", 80)
    with pytest.raises(InputError, match="90 classes; DeepStream .* accepts at most 80"):
        export_artifact(BuildRequest("test", "deepstream", weights=str(test_weights)), tmp_path)
    monkeypatch.undo()
    names = tuple(f"c{i}" for i in range(89)) + ("bad\nname",)
    with pytest.raises(InputError, match="cannot be written to DeepStream"):
        export_artifact(BuildRequest("test", "deepstream", weights=str(test_weights), class_names=names), tmp_path)
    assert not (tmp_path / "test-deepstream").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cli_one_line_exit_2(tmp_path, monkeypatch, capsys):
    from edgedet.cli import main
    from edgedet.converters import deepstream

    monkeypatch.setattr(deepstream, "MAX_CLASSES", 10)
    rc = main(["export", "--model", "test", "--format", "deepstream", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error:" in line]  # (the progress spinner says 'failed' on its own line)
    assert rc == 2 and len(errors) == 1 and "accepts at most 10" in errors[0] and "Traceback" not in "".join(err)
    assert not (tmp_path / "test-deepstream").exists()
    assert LABELS_NAME == "labels.txt"
