"""Run-time post-processing options (iou_threshold, max_det, classes): always applied with host NMS; with in-graph
NMS fed as graph inputs on ONNX Runtime (same detections as host NMS with the same options); refused in one line
where the backend fixed them at export (OpenVINO folds ONNX initializer inputs into constants)."""

import numpy as np
import pytest

from edgedet.errors import InputError
from edgedet.runtimes import Detector


def _same(a, b):
    assert len(a) == len(b)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)


def _run(path, images, **options):
    with Detector.load(path, **options) as det:
        return det(images)


def test_host_nms_options(artifacts, images):
    images = images[:2]
    base = _run(artifacts["onnx"], images, max_det=1000)  # uncapped, so the IoU threshold shows in the count
    top5 = _run(artifacts["onnx"], images, max_det=5)
    loose = _run(artifacts["onnx"], images, iou_threshold=0.9, max_det=1000)
    strict = _run(artifacts["onnx"], images, iou_threshold=0.2, max_det=1000)
    c = int(np.bincount(np.concatenate([d.class_ids for d in base])).argmax())
    only = _run(artifacts["onnx"], images, classes=[c], max_det=1000)
    for b, t, lo, st, o in zip(base, top5, loose, strict, only):
        assert len(t) == 5 and (t.scores == b.scores[:5]).all()
        assert len(st) < len(b) < len(lo)
        mine = b.class_ids == c
        assert set(o.class_ids.tolist()) == {c} and len(o) == mine.sum() > 0  # per-class NMS: the same class-c boxes
        np.testing.assert_allclose(o.xyxy, b.xyxy[mine], atol=1e-4)


@pytest.mark.parametrize(
    "options",
    [{"iou_threshold": 0.3}, {"max_det": 7}, {"classes": ["person", "3"]}, {"iou_threshold": 0.6, "max_det": 20}],
)
def test_in_graph_options_are_graph_inputs_on_onnxruntime(options, artifacts, images):
    host = _run(artifacts["onnx"], images, **options)
    graph = _run(artifacts["onnx_graph"], images, **options)
    assert sum(len(d) for d in graph) > 0
    for a, b in zip(host, graph):
        _same(a, b)


def test_fixed_at_export_is_one_line(artifacts, images, capsys):
    from edgedet.cli import main

    with pytest.raises(InputError, match="iou_threshold were fixed at export .*openvino folds them into constants"):
        Detector.load(artifacts["openvino_graph"], iou_threshold=0.3)
    with pytest.raises(InputError, match="max_det 500 is more than the 100 detections"):
        Detector.load(artifacts["onnx_graph"], max_det=500)
    with pytest.raises(InputError, match="'zebra-crossing' is not one of this model's 90 classes"):
        Detector.load(artifacts["onnx"], classes=["zebra-crossing"])
    import cv2

    photo = artifacts["onnx"].parent / "photo.jpg"
    cv2.imwrite(str(photo), images[0])
    rc = main(["detect", "--model", str(artifacts["openvino_graph"]), "--source", str(photo), "--max-det", "5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "max_det were fixed at export" in err[0]


def test_cli_flags_reach_the_detector(artifacts, images, capsys):
    import json

    import cv2

    from edgedet.cli import main

    photo = artifacts["onnx"].parent / "photo.jpg"
    cv2.imwrite(str(photo), images[0])
    args = ["detect", "--model", str(artifacts["onnx_graph"]), "--source", str(photo), "--json"]
    assert main([*args, "--max-det", "3", "--classes", "1,2"]) == 0
    dets = json.loads(capsys.readouterr().out)["results"][0]["detections"]
    assert 0 < len(dets["scores"]) <= 3 and set(dets["class_ids"]) <= {1, 2}


def test_batch_and_serve_pass_the_options_to_each_workers_detector(artifacts):
    """`edgedet batch` / `serve` hand --iou/--max-det/--classes to every actor's and replica's Detector.load (the
    workers are built here without Ray: the same classes Ray instantiates)."""
    from edgedet.cli import build_parser
    from edgedet.cli.common import nms_keywords
    from edgedet.integrations.ray_data import DetectActor
    from edgedet.integrations.ray_serve import DetectorServer

    path = str(artifacts["onnx"])
    for argv in (
        ["batch", "--model", path, "--source", "x/", "--out", "r.parquet"],
        ["serve", "--model", path],
    ):
        a = build_parser().parse_args([*argv, "--iou", "0.4", "--max-det", "9", "--classes", "person,2"])
        opts = nms_keywords(a)
        assert opts == {"iou_threshold": 0.4, "max_det": 9, "classes": ["person", "2"]}
        for worker in (DetectActor(path, options=opts), DetectorServer(path, options=opts)):
            assert worker.det.nms.given() == {"iou_threshold": 0.4, "max_det": 9, "classes": (0, 2)}
            worker.det.close()
