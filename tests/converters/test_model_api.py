"""OpenVINO model_api runs an edgedet IR with its own loader and SSD wrapper and gives the Detector's detections.

`Model.create_model` reads the model type, labels and pre-processing from the IR's rt_info model_info (written by
converters/openvino_ir.py); model_api letterboxes (fit_to_window), reverses BGR to RGB and runs the graph, which
normalises and writes the ssd output form. Inference precision is f32 on both sides (this CPU would pick bf16)."""

import numpy as np
import pytest

pytest.importorskip("model_api")
pytest.importorskip("openvino")

THRESHOLD = 0.3


@pytest.fixture(scope="module")
def model_api_ir(tmp_path_factory, test_weights):
    from edgedet.converters.pipeline import BuildRequest, export_artifact

    out = tmp_path_factory.mktemp("model_api")
    return export_artifact(
        BuildRequest("test", "openvino", weights=str(test_weights), options={"model_api": True}), out
    )


@pytest.fixture(scope="module")
def photos(images):
    import cv2
    from skimage import data

    return [*images, cv2.cvtColor(data.rocket(), cv2.COLOR_RGB2BGR)]  # astronaut, coffee, chelsea, rocket


def _iou(a, b):
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), -1)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], -1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


def test_rt_info_carries_model_info(model_api_ir):
    import openvino as ov

    from edgedet.manifest import Manifest

    names = Manifest.read(model_api_ir).class_names
    model = ov.Core().read_model(model_api_ir)
    assert model.get_rt_info(["model_info", "model_type"]).astype(str) == "SSD"
    assert model.get_rt_info(["model_info", "resize_type"]).astype(str) == "fit_to_window"
    assert model.get_rt_info(["model_info", "labels"]).astype(str).split() == [n.replace(" ", "_") for n in names]


def test_model_api_create_model_gives_the_detectors_detections(model_api_ir, photos):
    from model_api.adapters import OpenvinoAdapter, create_core
    from model_api.models import Model

    from edgedet.runtimes import Detector

    det = Detector.load(model_api_ir, inference_precision="f32", score_threshold=THRESHOLD)
    adapter = OpenvinoAdapter(
        create_core(), str(model_api_ir), device="CPU", plugin_config={"INFERENCE_PRECISION_HINT": "f32"}
    )
    wrapper = Model.create_model(adapter, configuration={"confidence_threshold": THRESHOLD})  # model type: rt_info
    assert type(wrapper).__name__ == "SSD"
    compared = 0
    for img in photos:
        d, r = det(img), wrapper(img)
        # model_api rounds boxes to whole pixels and drops boxes of at most 1 px^2 after clipping to the image
        # (model_api.models.ssd BBOX_AREA_THRESHOLD): detections the letterbox padding holds
        mine = np.round(d.xyxy)
        keep = (np.prod(mine[:, 2:] - mine[:, :2], -1) > 1) & (d.scores > THRESHOLD + 1e-3)
        theirs = r.bboxes.astype(np.float32)
        match = (
            (_iou(mine[keep], theirs) >= 0.99)
            & (d.class_ids[keep][:, None] == r.labels[None])
            & (np.abs(d.scores[keep][:, None] - r.scores[None]) <= 1e-3)
        )
        assert match.any(1).all(), f"{(~match.any(1)).sum()} of {keep.sum()} detections have no model_api twin"
        near = np.abs(r.scores - THRESHOLD) <= 1e-3
        assert (match.any(0) | near).all(), "model_api found detections the Detector did not"
        twin = match.argmax(0)[match.any(0)]  # each model_api detection's Detector twin: within rounding
        np.testing.assert_array_less(np.abs(d.xyxy[keep][twin] - theirs[match.any(0)]), 0.5 + 1e-3)
        compared += int(keep.sum())
    assert compared >= 40  # real detections on every photo, not an empty comparison
