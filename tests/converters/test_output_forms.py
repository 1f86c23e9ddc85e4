"""Output forms as data: every form gives today's detections on ONNX Runtime and OpenVINO; each form's tensors
have the names, dtypes and shapes its consumer's contract names; a form the Detector does not know is refused."""

import dataclasses
import json

import numpy as np
import pytest

from edgedet.errors import ArtifactError
from edgedet.manifest import manifest_path
from edgedet.postprocess import OUTPUT_FORMS

FORMS = [f for f in OUTPUT_FORMS if f != "edgedet"]


@pytest.fixture(scope="module")
def form_artifacts(tmp_path_factory, test_weights):
    """Each form as ONNX, and its IR converted from that ONNX (one trace per form)."""
    from edgedet.converters.builders import openvino_from_onnx
    from edgedet.converters.pipeline import BuildRequest, export_artifact

    out = tmp_path_factory.mktemp("forms")
    w = str(test_weights)
    paths = {}
    for form in FORMS:
        req = BuildRequest("test", "onnx", weights=w, postprocess="graph", options={"output_form": form})
        onnx = paths[form, "onnx"] = export_artifact(req, out / form / "onnx")
        paths[form, "openvino"] = openvino_from_onnx(onnx, out / form / "openvino" / "test.xml", {"precision": "fp32"})
    return paths


def _detect(path, images):
    from edgedet.runtimes import Detector

    options = {"inference_precision": "f32"} if path.suffix == ".xml" else {}
    with Detector.load(path, **options) as det:
        return det(images)


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
@pytest.mark.parametrize("form", FORMS)
def test_form_gives_the_same_detections(form, fmt, form_artifacts, artifacts, images):
    reference = _detect(artifacts["onnx_graph" if fmt == "onnx" else "openvino_graph"], images)
    got = _detect(form_artifacts[form, fmt], images)
    assert sum(len(d) for d in reference) > 30
    for a, b in zip(reference, got):
        assert len(a) == len(b)
        np.testing.assert_array_equal(a.class_ids, b.class_ids)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)  # ssd: normalised and back


def test_efficientnms_layout(form_artifacts):
    """TensorRT EfficientNMS_TRT's outputs, in the order DeepStream's NvDsInferParseCustomEfficientNMS reads them
    (outputLayersInfo[0..3]): int32 num_detections [B,1], float boxes [B,K,4], float scores [B,K], int32 classes."""
    import onnx

    g = onnx.load(form_artifacts["efficientnms", "onnx"]).graph
    want = [
        ("num_detections", onnx.TensorProto.INT32, 2),
        ("detection_boxes", onnx.TensorProto.FLOAT, 3),
        ("detection_scores", onnx.TensorProto.FLOAT, 2),
        ("detection_classes", onnx.TensorProto.INT32, 2),
    ]
    got = [(o.name, o.type.tensor_type.elem_type, len(o.type.tensor_type.shape.dim)) for o in g.output]
    assert got == want
    assert [i.name for i in g.input] == ["images"]  # consumer forms take the image only


def test_ssd_and_yolonas_padding(form_artifacts, images):
    import onnxruntime as ort

    from edgedet.preprocess import Preprocessor

    x, _ = Preprocessor((128, 128), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])([images[0]])
    ssd = ort.InferenceSession(str(form_artifacts["ssd", "onnx"])).run(None, {"images": x})[0]
    assert ssd.shape[:2] == (1, 1) and ssd.shape[3] == 7
    rows = ssd[0, 0]
    valid = rows[:, 0] == 0
    assert valid.any() and set(np.unique(rows[~valid, 0])) <= {-1.0}  # image id -1 pads
    assert (rows[valid, 3:] >= 0).all() and (rows[valid, 3:] <= 1).all()  # normalised corners
    assert (np.diff(rows[valid, 2]) <= 0).all()  # best first: Frigate and model_api read rows in order
    yn = ort.InferenceSession(str(form_artifacts["yolonas", "onnx"])).run(None, {"images": x})[0]
    assert yn.ndim == 2 and yn.shape[1] == 7
    kept = yn[:, 6] >= 0
    assert kept.sum() == valid.sum() and (yn[~kept, 6] == -1).all()
    assert (np.diff(kept.astype(int)) <= 0).all()  # padding only after the detections


def test_unknown_output_form_is_refused(tmp_path, form_artifacts):
    import shutil

    from edgedet.manifest import Manifest
    from edgedet.runtimes import Detector

    src = form_artifacts["ssd", "onnx"]
    dst = tmp_path / src.name
    shutil.copy(src, dst)
    m = Manifest.read(src)
    # a consistent artifact (sidecar and embedded copy) in a form this edgedet does not know (reading refuses it, so
    # the manifest is derived in memory, not parsed)
    bad = m.derive(postprocess=dataclasses.replace(m.postprocess, output_form="yolo-v99"))
    bad.write(dst)
    assert json.loads(manifest_path(dst).read_text())["postprocess"]["output_form"] == "yolo-v99"
    with pytest.raises(ArtifactError, match="output form 'yolo-v99' is not one this edgedet reads"):
        Detector.load(dst)


def test_forms_apply_to_in_graph_postprocessing_only(tmp_path, test_weights):
    from edgedet.converters.pipeline import BuildRequest, export_artifact
    from edgedet.errors import InputError

    with pytest.raises(InputError, match="--postprocess graph"):
        export_artifact(
            BuildRequest("test", "onnx", weights=str(test_weights), options={"output_form": "ssd"}), tmp_path
        )
    assert not list(tmp_path.iterdir())
