"""Options are checked, never swallowed: unknown or wrongly typed options, runtime vs build precision, devices."""

import pytest

import edgedet
from edgedet.errors import BackendUnavailableError, InputError
from edgedet.runtimes import Detector


def test_unknown_option_lists_the_accepted_ones(artifacts):
    with pytest.raises(
        InputError,
        match=r"unknown option 'treads' .*did you mean 'threads'.*accepted options: "
        r"graph_optimization, hint, threads",
    ):
        Detector.load(artifacts["onnx"], treads=2)


@pytest.mark.parametrize(
    "key, options, message",
    [
        ("onnx", {"threads": "two"}, "threads must be an integer"),
        ("onnx", {"hint": "fastest"}, "hint must be one of LATENCY, THROUGHPUT"),
        ("openvino", {"inference_precision": "int4"}, "inference_precision must be one of f32, bf16, f16"),
        ("openvino", {"precision": "f32"}, "unknown option 'precision'"),  # the runtime hint has its own name
        ("onnx", {"score_threshold": "abc"}, "score_threshold must be a number"),
        ("torch", {"half": "yes"}, "half must be True or False"),
    ],
)
def test_wrongly_typed_options(artifacts, key, options, message):
    with pytest.raises(InputError, match=message):
        Detector.load(artifacts[key], **options)


def test_typed_values_are_coerced_and_used(artifacts):
    det = Detector.load(artifacts["onnx"], threads="1")
    assert det.runner.session.get_session_options().intra_op_num_threads == 1
    det = Detector.load(artifacts["openvino"], inference_precision="f32", hint="throughput")
    assert det.runner.execution_precision == "f32"
    assert str(det.runner.compiled.get_property("PERFORMANCE_HINT")) == "THROUGHPUT"


def test_devices_are_honoured_or_refused(artifacts):
    with pytest.raises(InputError, match="does not run on device 'gpu'"):
        Detector.load(artifacts["onnx"], device="gpu")
    with pytest.raises(InputError, match="unknown device 'cuda-1'"):
        Detector.load(artifacts["onnx"], device="cuda-1")
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(BackendUnavailableError, match=r"onnxruntime on cuda:1.*edgedet\[onnxruntime-gpu\]"):
            Detector.load(artifacts["onnx"], device="cuda:1")
    import torch

    if torch.cuda.device_count() < 2:
        with pytest.raises(InputError, match=r"cuda:1 requested but torch sees"):
            Detector.load(artifacts["torch"], device="cuda:1")
    with pytest.raises(Exception, match=r"GPU\.3"):
        Detector.load(artifacts["openvino"], device="gpu:3")


def test_build_keywords_belong_to_model_names(artifacts, test_weights):
    with pytest.raises(InputError, match="weights applies to model names only"):
        edgedet.load(artifacts["onnx"], weights=str(test_weights))
    with pytest.raises(InputError, match="is not an artifact file; to build a model by name use edgedet.load"):
        Detector.load("d0")
    with pytest.raises(InputError, match="unknown option 'wieghts'"):
        edgedet.load("test", backend="onnxruntime", wieghts=str(test_weights))
    with pytest.raises(InputError, match="onnx artifacts are built in fp32, fp16, not 'int8'"):
        edgedet.load("test", backend="onnxruntime", precision="int8")


def test_facade_builds_a_model_name_through_the_cache(test_weights, images):
    det = edgedet.load("test", backend="ort", weights=test_weights, threads=1)
    again = edgedet.load("test", backend="onnxruntime", weights=test_weights)
    assert det.runner.path == again.runner.path and det.backend == "onnxruntime"
    a, b = det(images[0]), again(images[0])
    assert len(a) == len(b) > 0


def test_openvino_compiles_through_its_model_cache(artifacts, tmp_path):
    """Issue 15: the compiled blob is kept (default: in the edgedet cache), so a second start skips the compile;
    a path option keeps its case."""
    cache = tmp_path / "OV-Cache"
    Detector.load(artifacts["openvino"], cache_dir=str(cache)).close()
    assert cache.is_dir() and any(cache.iterdir())
    from edgedet.weights import cache_dir

    Detector.load(artifacts["openvino"]).close()
    assert any((cache_dir() / "openvino-model-cache").iterdir())
