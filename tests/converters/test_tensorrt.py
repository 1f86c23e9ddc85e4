"""TensorRT path. CPU: the TRT-bound ONNX passes the static check and runs in ONNX Runtime; modules import
without TensorRT. The `tensorrt` tests build and run engines wherever TensorRT and a GPU exist."""

import importlib
import json
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgedet.converters.pipeline import BuildRequest, export_artifact, get_artifact
from edgedet.converters.trt_check import check_tensorrt_onnx
from edgedet.errors import ArtifactError, InputError
from edgedet.manifest import Manifest, manifest_path
from edgedet.runtimes import Detector
from edgedet.weights import file_sha256


@pytest.fixture(scope="module")
def trt_onnx(tmp_path_factory, test_weights):
    """What `edgedet build --backend trt --precision fp16` feeds TensorRT: FP16, dynamic batch, in-graph NMS."""
    out = tmp_path_factory.mktemp("trt")
    return export_artifact(
        BuildRequest(
            "test",
            "onnx",
            precision="fp16",
            weights=str(test_weights),
            batch="dynamic",
            max_batch=8,
            postprocess="graph",
        ),
        out,
    )


def test_trt_bound_onnx_passes_static_check(trt_onnx, artifacts):
    rep = check_tensorrt_onnx(trt_onnx, 1, 8)
    assert rep.ok, rep.to_dict()["findings"]
    for version in ("8.6", "10.0", "10.1", "10.16"):  # every table: what edgedet exports builds on each
        assert check_tensorrt_onnx(trt_onnx, 1, 8, version=version).ok, version
    assert rep.ops["NonMaxSuppression"] == 1 and "Mod" not in rep.ops
    assert check_tensorrt_onnx(artifacts["onnx"], 1, 1).ok


def test_trt_bound_fp16_onnx_matches_fp32_in_onnxruntime(trt_onnx, artifacts, images):
    fp16 = Detector.load(trt_onnx)
    fp32 = Detector.load(artifacts["onnx"])
    for img in images:
        a, b = fp16(img, score_threshold=0.3), fp32(img, score_threshold=0.3)
        assert abs(len(a) - len(b)) <= max(1, len(b) // 10)
        n = min(len(a), len(b), 10)
        assert (a.class_ids[:n] == b.class_ids[:n]).mean() >= 0.8
        assert np.abs(a.scores[:n] - b.scores[:n]).max() < 0.02


def _model(nodes, inits, inputs, outputs, opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    return m


def test_static_check_catches_problems(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3, "h", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = {"s": np.array(0.1, np.float32), "zp_u8": np.array(3, np.uint8), "k": np.array([2], np.int64)}
    nodes = [
        helper.make_node("Unique", ["x"], ["m"]),
        helper.make_node("QuantizeLinear", ["m", "s", "zp_u8"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "s", "zp_u8"], ["dq"]),
        helper.make_node("EfficientNMS_TRT", ["dq"], ["n"], domain="trt.plugins"),
        helper.make_node("Shape", ["x"], ["shp"]),
        helper.make_node("Gather", ["shp", "k"], ["kk"]),
        helper.make_node("Unsqueeze", ["dq", "kk"], ["u"]),  # axes computed in the graph
        helper.make_node("TopK", ["u", "kk"], ["y", "i"]),  # K computed in the graph: fine, but not checkable
    ]
    path = tmp_path / "bad.onnx"
    onnx.save(_model(nodes, inits, [x], [y]), path)
    rep = check_tensorrt_onnx(path)
    msgs = " | ".join(f.message for f in rep.findings)
    assert "Unique is not in TensorRT 11.1's ONNX operator list (listed as unsupported" in msgs
    assert "needs a TensorRT plugin" in msgs and "EfficientNMS" in msgs
    assert "not signed INT8" in msgs and "non-zero zero-point" in msgs
    assert "Unsqueeze `axes` must be resolvable to a constant" in msgs
    assert "K is computed at run time" in msgs  # a warning: TensorRT >= 8.6 takes a run-time K
    assert "only the batch dimension may be dynamic" in msgs
    assert not rep.ok


def _ops_model(path, nodes, inits, out_shape=None):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)
    onnx.save(_model(nodes, inits, [x], [y]), path)
    return path


def test_check_accepts_mod_and_nonzero_refuses_topk_over_3840(tmp_path, capsys):
    """Issue 13 #7: Mod/NonZero/... are supported from TensorRT 8.5/8.6 on; TopK K < 3840 from 10.1 on."""
    from edgedet.cli import main

    ok = _ops_model(
        tmp_path / "mod.onnx",
        [
            helper.make_node("Mod", ["x", "x"], ["m"], fmod=1),
            helper.make_node("NonZero", ["m"], ["nz"]),
            helper.make_node("Cast", ["nz"], ["y"], to=TensorProto.FLOAT),
        ],
        {},
    )
    assert main(["check", "--backend", "trt", str(ok)]) == 0
    assert "PASS" in capsys.readouterr().out
    big = _ops_model(
        tmp_path / "topk.onnx",
        [
            helper.make_node("Reshape", ["x", "shape"], ["flat"]),
            helper.make_node("TopK", ["flat", "k"], ["y", "i"], axis=1),
        ],
        {"shape": np.array([1, -1], np.int64), "k": np.array([3841], np.int64)},
    )
    assert main(["check", "--backend", "trt", str(big)]) == 1
    assert "TopK `K` input must be less than 3840 (TensorRT 11.1, operators.md): K=3841" in capsys.readouterr().out


def test_check_qdq_scale_granularity(tmp_path):
    """Weights per output channel (axis 0) or per tensor; activations per tensor."""
    w = np.ones((4, 3, 1, 1), np.float32)
    inits = {
        "w": w,
        "ws_c": np.full(4, 0.1, np.float32),
        "wzp_c": np.zeros(4, np.int8),
        "ws_in": np.full(3, 0.1, np.float32),
        "wzp_in": np.zeros(3, np.int8),
        "as_c": np.full(3, 0.1, np.float32),
        "azp_c": np.zeros(3, np.int8),
    }
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "as_c", "azp_c"], ["qx"], axis=1),  # activation per channel
        helper.make_node("DequantizeLinear", ["qx", "as_c", "azp_c"], ["dx"], axis=1),
        helper.make_node("QuantizeLinear", ["w", "ws_in", "wzp_in"], ["qw"], axis=1),  # weight on the input axis
        helper.make_node("DequantizeLinear", ["qw", "ws_in", "wzp_in"], ["dw"], axis=1),
        helper.make_node("Conv", ["dx", "dw"], ["y"]),
    ]
    rep = check_tensorrt_onnx(_ops_model(tmp_path / "q.onnx", nodes, inits))
    msgs = " | ".join(f.message for f in rep.findings)
    assert "activation Q/DQ nodes have per-channel scales" in msgs
    assert "per-channel on an axis other than the output channel" in msgs and not rep.ok


def test_check_cli(trt_onnx, capsys):
    from edgedet.cli import main

    assert main(["check", "--backend", "trt", str(trt_onnx)]) == 0
    assert "PASS" in capsys.readouterr().out
    assert main(["check", str(trt_onnx) + ".missing"]) == 2


def test_without_tensorrt_modules_import_and_loading_names_the_extra(artifacts, tmp_path):
    """In a fresh process where `import tensorrt` fails: every TensorRT module imports, and loading an engine
    or building one says which extra to install (BackendUnavailableError, exit 2 from the CLI), never ImportError."""
    import subprocess

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not a real plan")
    data = json.loads(manifest_path(artifacts["onnx"]).read_text())
    data["artifact"].update(file="m.engine", format="tensorrt", sha256=file_sha256(engine), size=engine.stat().st_size)
    manifest_path(engine).write_text(json.dumps(data))
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorrt" or name.startswith("tensorrt."):
            raise ImportError("blocked")
sys.meta_path.insert(0, Block())
import importlib
for m in ("edgedet.converters.tensorrt_engine", "edgedet.runtimes.tensorrt_runner", "edgedet.tensorrt_lib",
          "edgedet.cuda", "edgedet.converters.trt_check"):
    importlib.import_module(m)
from edgedet.errors import BackendUnavailableError
from edgedet.runtimes import Detector
try:
    Detector.load({str(engine)!r})
except BackendUnavailableError as e:
    print("LOAD:", e)
from edgedet.cli import main
print("BUILD rc", main(["build", "--model", "test", "--out", {str(tmp_path / "b")!r}]))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "LOAD: backend 'tensorrt' is not available: install it with  pip install 'edgedet[tensorrt]'" in r.stdout
    assert "BUILD rc 2" in r.stdout and "Traceback" not in r.stderr


def test_engine_for_another_gpu_is_refused():
    from edgedet.tensorrt_lib import check_engine_device

    m = {"gpu": "NVIDIA A100", "compute_capability": "8.0", "tensorrt": "10.3.0"}
    check_engine_device(m, {"gpu": "NVIDIA A100", "compute_capability": "8.0"}, "10.3.0")
    with pytest.raises(ArtifactError, match="compute capability 8.0 .here 9.0."):
        check_engine_device(m, {"gpu": "NVIDIA H100", "compute_capability": "9.0"}, "10.3.0")
    with pytest.raises(ArtifactError, match="TensorRT 10.3.0 .here 10.8.0."):
        check_engine_device(m, {"gpu": "NVIDIA A100", "compute_capability": "8.0"}, "10.8.0")


def _has_tensorrt() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


@pytest.mark.skipif(_has_tensorrt(), reason="checks the path without TensorRT")
def test_build_cli_without_tensorrt_keeps_checked_onnx(test_weights, tmp_path, capsys):
    from edgedet.cli import main

    rc = main(
        [
            "build",
            "--model",
            "test",
            "--weights",
            str(test_weights),
            "--batch",
            "dynamic",
            "--max-batch",
            "4",
            "--out",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "pip install 'edgedet[tensorrt]'" in err
    onnx_path = tmp_path / "test_fp16.onnx"
    assert check_tensorrt_onnx(onnx_path, 1, 4).ok and Manifest.read(onnx_path).precision == "fp16"
    line = next(l for l in err.splitlines() if l.strip().startswith("trtexec"))
    assert f"--onnx={onnx_path}" in line and "--maxShapes=images:4x3x128x128" in line
    assert "--stronglyTyped" in line and "--fp16" not in line  # TensorRT >= 10: strongly typed
    assert "TensorRT 8.6" in err and "--fp16" in err  # and the 8.6 form, labelled
    assert not list(tmp_path.glob("*.engine"))


def test_build_cli_refuses_onnx_failing_the_check(tmp_path, capsys):
    from edgedet.cli import main

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    path = tmp_path / "in" / "unique.onnx"
    path.parent.mkdir()
    onnx.save(_model([helper.make_node("Unique", ["x"], ["y"])], {}, [x], [y]), path)
    import shutil

    from edgedet.manifest import manifest_path

    src = export_artifact(BuildRequest("test", "onnx"), tmp_path / "ref")
    shutil.copy(manifest_path(src), manifest_path(path))  # a manifest, so only the check can refuse it
    rc = main(["build", "--model", str(path), "--out", str(tmp_path / "out"), "--json"])
    err = capsys.readouterr().err
    assert rc == 1 and "Unique is not in TensorRT 11.1's ONNX operator list" in err and "nothing built" in err
    assert not list((tmp_path / "out").glob("*.engine"))


def test_trtexec_command_for_int8_dla():
    from edgedet.converters.tensorrt_engine import EngineOptions, trtexec_command

    opts = EngineOptions(min_batch=8, opt_batch=8, max_batch=8, workspace_mb=512, dla_core=0, timing_cache="t.cache")
    cmd = trtexec_command("m.onnx", "m.engine", "int8", "images", ["batch", 3, 512, 512], opts, trt_version="8.6.1")
    assert cmd[:3] == ["trtexec", "--onnx=m.onnx", "--saveEngine=m.engine"]
    assert {
        "--int8",
        "--memPoolSize=workspace:512M",
        "--useDLACore=0",
        "--allowGPUFallback",
        "--timingCacheFile=t.cache",
        "--minShapes=images:8x3x512x512",  # DLA: one batch size
        "--optShapes=images:8x3x512x512",
        "--maxShapes=images:8x3x512x512",
    } <= set(cmd)
    assert "--fp16" in cmd and "--stronglyTyped" not in cmd  # weakly typed Q/DQ: float parts in FP16
    gpu = EngineOptions(min_batch=1, opt_batch=2, max_batch=8)
    cmd10 = trtexec_command("m.onnx", "m.engine", "int8", "images", ["batch", 3, 512, 512], gpu, trt_version="10.3")
    assert "--stronglyTyped" in cmd10 and "--int8" not in cmd10  # TensorRT 10 GPU: strongly typed Q/DQ
    assert "--optShapes=images:2x3x512x512" in cmd10


@pytest.mark.parametrize(
    "version, options, message",
    [
        ("10.13.0", {"dla_core": 0}, "DLA is not supported by TensorRT 10.13.0"),
        ("10.7.0", {"dla_core": 0}, "DLA runs FP16 or INT8 layers only"),
        ("10.3.0", {"dla_core": 0}, "DLA runs FP16 or INT8 layers only"),  # with an FP32 ONNX
        ("11.4.0", {"strongly_typed": False}, "builds strongly typed networks only"),
        ("8.6.1", {"strongly_typed": True}, "has no strongly typed networks"),
    ],
)
def test_engine_options_refused_for_the_version(version, options, message):
    from edgedet.converters.tensorrt_engine import EngineOptions

    with pytest.raises(InputError, match=message):
        EngineOptions(**options).resolve(version, "fp32")


def test_engine_options_strongly_typed_from_10():
    from edgedet.converters.tensorrt_engine import EngineOptions

    assert EngineOptions().resolve("8.6.1", "fp16") is False
    assert EngineOptions().resolve("10.0.1", "fp16") is True
    assert EngineOptions(dla_core=0).resolve("10.7.0", "int8") is False  # DLA on 10.x: weakly typed
    assert EngineOptions(dla_core=0).resolve("11.4.1", "int8") is True


# ---------------------------------------------------------------- where TensorRT exists
@pytest.fixture(scope="module")
def trt():
    return pytest.importorskip("tensorrt")


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_build_and_run_engine_matches_onnxruntime(trt, test_weights, artifacts, images, tmp_path):
    engine = export_artifact(BuildRequest("test", "tensorrt", weights=str(test_weights), postprocess="graph"), tmp_path)
    m = Manifest.read(engine)
    assert m.device["tensorrt"] == trt.__version__ and m.device["compute_capability"]
    ref = Detector.load(artifacts["onnx_graph"])
    det = Detector.load(engine)
    for img in images:
        a, b = det(img, score_threshold=0.3), ref(img, score_threshold=0.3)
        assert len(a) == len(b)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.5)


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_dynamic_batch_profile(trt, test_weights, images, tmp_path):
    engine = export_artifact(
        BuildRequest("test", "tensorrt", precision="fp16", weights=str(test_weights), batch="dynamic", max_batch=4),
        tmp_path,
    )
    det = Detector.load(engine)
    assert len(det(images + images[:1])) == 4
    x = np.zeros((5, 3, 128, 128), np.float32)
    with pytest.raises(InputError, match="outside the engine's profile 1..4"):
        det.runner({"images": x})


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_engine_cache_invalidation_and_truncation(trt, test_weights, tmp_path):
    req = BuildRequest("test", "tensorrt", weights=str(test_weights))
    first = get_artifact(req, root=tmp_path)
    again = get_artifact(req, root=tmp_path)
    assert again.cached and again.path == first.path
    first.path.write_bytes(first.path.read_bytes()[:1000])  # damaged entry -> rebuilt
    rebuilt = get_artifact(req, root=tmp_path)
    assert not rebuilt.cached and Manifest.read(rebuilt.path)
    import shutil

    from edgedet.manifest import manifest_path

    bad = tmp_path / "truncated.engine"
    bad.write_bytes(rebuilt.path.read_bytes()[:4096])
    shutil.copy(manifest_path(rebuilt.path), manifest_path(bad))
    with pytest.raises(ArtifactError, match="cannot deserialize"):
        Detector.load(bad, verify=False)  # past the hash check: TensorRT itself must refuse it, no segfault


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_build_cli_and_shape_changes(trt, test_weights, images, tmp_path):
    """`edgedet build` writes a loadable engine; alternating batch sizes re-plan buffers (freed, not leaked)
    and keep results identical."""
    from edgedet.cli import main

    assert (
        main(
            [
                "build",
                "--model",
                "test",
                "--weights",
                str(test_weights),
                "--batch",
                "dynamic",
                "--max-batch",
                "4",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    det = Detector.load(tmp_path / "test_fp16.engine")
    single = [det(img) for img in images]
    for _ in range(3):
        batched = det(images)
        for a, b in zip(batched, single):
            np.testing.assert_allclose(a.scores, b.scores, atol=1e-3)
        det(images[0])
    det.close()


def test_cuda_graph_with_in_graph_nms_is_refused_before_any_cuda_work(artifacts):
    """Issue 13 #2: data-dependent NMS shapes cannot be captured; refused with a clear message up front."""
    from edgedet.devices import Device
    from edgedet.runtimes.tensorrt_runner import TensorRTRunner

    m = Manifest.read(artifacts["onnx_graph"])
    with pytest.raises(InputError, match="cuda_graph cannot be used with in-graph NMS"):
        TensorRTRunner(artifacts["onnx_graph"], m, Device("cuda"), cuda_graph=True)


def test_tensorrt_extra_pins_the_cuda_major():
    """Issue 13 #4: cuda-python 13 needs a CUDA 13 driver; the extra pins the TensorRT wheels' CUDA 12."""
    from pathlib import Path

    setup = (Path(__file__).resolve().parents[2] / "setup.py").read_text()
    assert '"cuda-python>=12.3,<13"' in setup and '"tensorrt-cu12' in setup


# ---------------------------------------------------------------- the builder double (tests/trt_double.py)
class FakeCudart:
    """cuda.bindings.runtime as edgedet.cuda calls it: the current device and the properties of 4 GPUs."""

    def __init__(self):
        self.current, self.calls = 0, []

    def cudaGetDevice(self):
        return (0, self.current)

    def cudaSetDevice(self, i):
        self.calls.append(i)
        self.current = i
        return (0,)

    def cudaGetDeviceCount(self):
        return (0, 4)

    def cudaGetDeviceProperties(self, i):
        return (0, type("P", (), {"name": f"GPU{i}".encode(), "major": 9, "minor": 0})())

    def cudaRuntimeGetVersion(self):
        return (0, 12080)


def _double(monkeypatch, version, **kw):
    import edgedet.cuda
    from tests.trt_double import make_trt

    rt = FakeCudart()
    trt = make_trt(version, cuda_device=lambda: rt.current, **kw)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(edgedet.cuda, "_cudart", lambda: rt)
    return trt, rt


def _onnx_with_precision(src, precision, tmp_path):
    import shutil

    path = tmp_path / f"m_{precision}.onnx"
    shutil.copy(src, path)
    Manifest.read(src).derive(precision=precision).write(path)
    return path


BUILD_CASES = [  # version, ONNX precision, options -> strongly typed, builder flags, layers pinned to FP32
    ("8.6.1", "fp32", {}, False, set(), False),
    ("8.6.1", "fp16", {}, False, {"FP16", "OBEY_PRECISION_CONSTRAINTS"}, True),
    ("8.6.1", "int8", {}, False, {"FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS"}, True),
    ("10.3.0", "fp16", {}, True, set(), False),
    ("10.3.0", "int8", {}, True, set(), False),  # the Q/DQ + FP16 ONNX decides: no flags
    ("10.3.0", "fp16", {"strongly_typed": False}, False, {"FP16", "OBEY_PRECISION_CONSTRAINTS"}, True),
    ("11.4.0", "fp16", {}, True, set(), False),
    ("11.4.0", "int8", {}, True, set(), False),
    # DLA: weakly typed on 10.x (NVIDIA documents strongly typed DLA from 11.4.1 only), strongly typed on 11.4.1
    ("10.3.0", "int8", {"dla_core": 1}, False, {"FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS", "GPU_FALLBACK"}, True),
    ("8.6.1", "fp16", {"dla_core": 0}, False, {"FP16", "OBEY_PRECISION_CONSTRAINTS", "GPU_FALLBACK"}, True),
    ("11.4.1", "int8", {"dla_core": 0}, True, {"GPU_FALLBACK"}, False),
]


@pytest.mark.parametrize("version, precision, options, strongly, flags, pins", BUILD_CASES)
def test_builder_flags_and_fp32_pins_per_version(
    monkeypatch, tmp_path, artifacts, version, precision, options, strongly, flags, pins
):
    """Issue 24 #1/#2/#3: what build_engine asks of TensorRT 8.6 / 10.x / 11.x. FP32 is pinned only on the
    post-processing layers that compute in float, only when FP16 is enabled; INT32 / shape / constant / Cast /
    Gather / TopK / Equal / NMS layers never get a precision."""
    from edgedet.converters.tensorrt_engine import EngineOptions, build_engine
    from tests.trt_double import PINNABLE

    trt, _ = _double(monkeypatch, version)
    onnx_path = _onnx_with_precision(artifacts["onnx"], precision, tmp_path)
    build_engine(onnx_path, tmp_path / "m.engine", EngineOptions(**options))
    net, config = trt.builder.network, trt.builder.config
    assert config.flags == flags
    creation = {n for n in ("EXPLICIT_BATCH", "STRONGLY_TYPED") if hasattr(trt.NetworkDefinitionCreationFlag, n)}
    set_flags = {n for n in creation if net.flags & (1 << int(getattr(trt.NetworkDefinitionCreationFlag, n)))}
    assert set_flags == ({"STRONGLY_TYPED"} if strongly else set()) | (
        {"EXPLICIT_BATCH"} if version.startswith("8.") else set()
    )
    pinned = {layer.name for layer in net.layers if layer.precision_set is not None}
    assert pinned == (PINNABLE if pins else set())
    for layer in net.layers:
        if layer.name in pinned:
            assert layer.precision_set is trt.float32 and set(layer.output_types.values()) == {trt.float32}
        else:
            assert layer.precision_set is None and not layer.output_types, layer.name
    assert (config.default_device_type is trt.DeviceType.DLA) == ("dla_core" in options)
    if "dla_core" in options:
        assert config.DLA_core == options["dla_core"]
    m = Manifest.read(tmp_path / "m.engine")
    assert m.extra["strongly_typed"] is strongly and m.device["tensorrt"] == version


def test_never_pinned_layer_kinds_are_in_the_double():
    """The double's post-processing has every kind the issue names as never pinned (so the test above can fail)."""
    from tests.trt_double import PINNABLE, default_layers, make_trt

    trt = make_trt("8.6.1")
    layers = default_layers(trt)
    kinds = {layer.type.name for layer in layers if layer.name.startswith("pp_") and layer.name not in PINNABLE}
    assert {"CONSTANT", "SHAPE", "CAST", "GATHER", "TOPK", "NMS", "SLICE", "ELEMENTWISE"} <= kinds
    dtypes = {t.dtype.name for layer in layers for t in layer.inputs + layer.outputs}
    assert {"int32", "bool", "float16", "float32"} <= dtypes


@pytest.mark.parametrize(
    "version, options, message",
    [
        ("10.8.0", {"dla_core": 0}, "DLA is not supported by TensorRT 10.8.0"),
        ("11.4.0", {"dla_core": 0}, "DLA is not supported by TensorRT 11.4.0"),
        ("10.3.0", {"dla_core": 0, "strongly_typed": True}, "strongly typed DLA builds are documented from"),
        ("10.3.0", {"dla_core": 0, "max_batch": 4}, "DLA engines need one batch size"),
    ],
)
def test_dla_options_refused(version, options, message):
    from edgedet.converters.tensorrt_engine import EngineOptions

    with pytest.raises(InputError, match=message):
        EngineOptions(**options).resolve(version, "fp16")


def test_dla_releases():
    """NVIDIA's TensorRT 11.4.1 release notes: DLA up to 10.7, none in 11.0-11.4.0 (Linux), back in 11.4.1 on Orin."""
    from edgedet.converters.tensorrt_engine import dla_available

    assert [dla_available(v) for v in ("8.6.2", "10.3.0", "10.7.0", "10.8", "11.0", "11.4.0", "11.4.1", "11.5")] == [
        True,
        True,
        True,
        False,
        False,
        False,
        True,
        True,
    ]


def test_build_on_the_requested_gpu(monkeypatch, tmp_path, artifacts):
    """Issue 24 #4: --device cuda:2 builds on GPU 2 (cudaSetDevice before trt.Builder, as trtexec --device), the
    manifest records GPU 2, and the caller's device is restored."""
    from edgedet.converters.tensorrt_engine import EngineOptions, build_engine

    trt, rt = _double(monkeypatch, "10.3.0")
    onnx_path = _onnx_with_precision(artifacts["onnx"], "fp16", tmp_path)
    build_engine(onnx_path, tmp_path / "m.engine", EngineOptions(device="cuda:2"))
    builder_device = next(e[2] for e in trt.log if e[0] == "Builder")
    assert builder_device == 2 and rt.current == 0
    assert Manifest.read(tmp_path / "m.engine").device["gpu"] == "GPU2"


def test_one_logger_for_builder_parser_and_runtime(monkeypatch, tmp_path, artifacts):
    from edgedet.converters.tensorrt_engine import EngineOptions, build_engine
    from edgedet.tensorrt_lib import logger

    trt, _ = _double(monkeypatch, "10.3.0")
    onnx_path = _onnx_with_precision(artifacts["onnx"], "fp16", tmp_path)
    build_engine(onnx_path, tmp_path / "a.engine", EngineOptions())
    build_engine(onnx_path, tmp_path / "b.engine", EngineOptions())
    ids = {e[1] for e in trt.log if e[0] in ("Builder", "OnnxParser")}
    assert ids == {id(logger(trt))} and sum(1 for e in trt.log if e[0] == "Logger") == 1


def test_concurrent_builds_merge_the_timing_cache(monkeypatch, tmp_path, artifacts):
    """Issue 24 #6: builds sharing one timing cache merge their timings into it under a lock (trtexec's
    updateTimingCacheFile: load, combine, write) instead of the last writer dropping the others'."""
    import json as _json
    import threading

    from edgedet.converters.tensorrt_engine import EngineOptions, build_engine

    trt, _ = _double(monkeypatch, "10.3.0")
    onnx_path = _onnx_with_precision(artifacts["onnx"], "fp16", tmp_path)
    cache = tmp_path / "t.cache"
    builds = [
        threading.Thread(
            target=build_engine, args=(onnx_path, tmp_path / f"{i}.engine", EngineOptions(timing_cache=str(cache)))
        )
        for i in range(3)
    ]
    for t in builds:
        t.start()
    for t in builds:
        t.join()
    entries = _json.loads(cache.read_bytes())
    assert len(entries) == 3 and (tmp_path / "t.cache.lock").exists()


def test_trtexec_lines_per_tensorrt_form():
    """Issue 24 #6: the 8.6 INT8 line has --int8 --fp16; DLA prints the 10.x (weakly typed), 8.6 and 11.4.1 forms."""
    from edgedet.converters.tensorrt_engine import EngineOptions, trtexec_command

    opts = EngineOptions(dla_core=0)
    shape = [1, 3, 512, 512]
    int8_86 = trtexec_command("m.onnx", "m.engine", "int8", "images", shape, EngineOptions(), "8.6")
    assert "--int8" in int8_86 and "--fp16" in int8_86 and "--stronglyTyped" not in int8_86
    dla_10 = trtexec_command("m.onnx", "m.engine", "int8", "images", shape, opts, "10.3")
    assert {"--int8", "--fp16", "--useDLACore=0", "--allowGPUFallback"} <= set(
        dla_10
    ) and "--stronglyTyped" not in dla_10
    dla_86 = trtexec_command("m.onnx", "m.engine", "fp16", "images", shape, opts, "8.6")
    assert {"--fp16", "--useDLACore=0"} <= set(dla_86)
    dla_11 = trtexec_command("m.onnx", "m.engine", "int8", "images", shape, opts, "11.4.1")
    assert "--stronglyTyped" in dla_11 and "--int8" not in dla_11 and "--useDLACore=0" in dla_11


class HostCuda:
    """edgedet.cuda's backend interface on host memory: device buffers are numpy byte arrays by address."""

    name = "host"

    def __init__(self, device=0, graphs=True):
        self.mem, self.next, self.graphs, self.capturing, self.captures = {}, 4096, graphs, False, 0
        self.stream_handle = 7

    def active(self):
        import contextlib

        return contextlib.nullcontext()

    def device_properties(self, index=0):
        return {"gpu": "GPU0", "compute_capability": "9.0"}

    def device_alloc(self, nbytes):
        self.next += 4096 + nbytes
        self.mem[self.next] = np.zeros(nbytes, np.uint8)
        return self.next

    def device_free(self, ptr):
        del self.mem[ptr]

    def host_alloc(self, shape, dtype):
        return np.zeros(shape, dtype)

    def host_free(self, host):
        pass

    def h2d(self, ptr, host):
        self.mem[ptr][:] = host.reshape(-1).view(np.uint8)

    def d2h(self, host, ptr):
        host.reshape(-1).view(np.uint8)[:] = self.mem[ptr]

    def synchronize(self):
        pass

    def begin_capture(self):
        self.captures += 1
        if not self.graphs:
            raise RuntimeError("capture not supported here")
        self.capturing = True

    def end_capture(self):
        self.capturing = False
        return "graph"

    def launch_graph(self, graph):
        pass

    def graph_free(self, graph):
        pass

    def close(self):
        pass


def _fake_runner(monkeypatch, artifacts, tmp_path, version="10.3.0", dla_core=None, graphs=True, **options):
    """A TensorRTRunner over the runtime double: its engine doubles the input (on host 'device' memory)."""
    from edgedet.devices import Device
    from edgedet.runtimes import tensorrt_runner
    from tests.trt_double import Engine, add_runtime, make_trt

    cuda = HostCuda(graphs=graphs)

    def kernel(stream, addr, shape):
        n = int(np.prod(shape)) * 4
        cuda.mem[addr["out"]][:n] = (cuda.mem[addr["images"]][:n].view(np.float32) * 2).view(np.uint8)

    trt = add_runtime(make_trt(version), lambda t: Engine(t, kernel))
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(tensorrt_runner, "cuda_backend", lambda ordinal: cuda)
    engine = tmp_path / "fake.engine"
    engine.write_bytes(b"plan")
    m = Manifest.read(artifacts["onnx"]).derive(
        device={"gpu": "GPU0", "compute_capability": "9.0", "tensorrt": version, "dla_core": dla_core}
    )
    return tensorrt_runner.TensorRTRunner(engine, m, Device("cuda", 0), **options), trt, cuda


def test_runner_buffers_and_outputs_through_the_double(monkeypatch, artifacts, tmp_path):
    runner, trt, cuda = _fake_runner(monkeypatch, artifacts, tmp_path)
    x = np.arange(2 * 3 * 8 * 8, dtype=np.float32).reshape(2, 3, 8, 8)
    np.testing.assert_array_equal(runner({"images": x})["out"], 2 * x)
    y = np.ones((3, 3, 8, 8), np.float32)  # a new shape: buffers re-planned, the old ones freed
    np.testing.assert_array_equal(runner({"images": y})["out"], 2 * y)
    assert len(cuda.mem) == 2
    runner.close()
    assert not cuda.mem


def test_runner_checks_set_input_shape_and_set_tensor_address(monkeypatch, artifacts, tmp_path):
    """Issue 24 #6: a refused shape or address is an error, not a silent run on stale buffers."""
    runner, trt, cuda = _fake_runner(monkeypatch, artifacts, tmp_path)
    x = np.zeros((1, 3, 8, 8), np.float32)
    runner.context.refuse_shape = True
    with pytest.raises(InputError, match="TensorRT refused input shape"):
        runner({"images": x})
    runner.context.refuse_shape, runner.context.refuse_address = False, True
    with pytest.raises(ArtifactError, match="refused the device address"):
        runner({"images": x})
    runner.context.refuse_address = False
    np.testing.assert_array_equal(runner({"images": x + 1})["out"], 2 * (x + 1))


@pytest.mark.parametrize("how", ["capture raises", "execute fails in capture"])
def test_failed_cuda_graph_capture_is_not_retried(monkeypatch, artifacts, tmp_path, how):
    """Issue 24 #6: one failed capture switches graphs off for good (one warning), calls keep working."""
    import warnings

    runner, trt, cuda = _fake_runner(monkeypatch, artifacts, tmp_path, graphs=how != "capture raises", cuda_graph=True)
    runner.context.fail_in_capture = True
    runner.context.capturing = lambda: cuda.capturing
    x = np.ones((1, 3, 8, 8), np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for batch in (1, 1, 2, 1):
            xb = np.repeat(x, batch, 0)
            np.testing.assert_array_equal(runner({"images": xb})["out"], 2 * xb)
    assert cuda.captures == 1 and not runner.use_graph
    assert sum("CUDA graph capture failed" in str(w.message) for w in caught) == 1


def test_dla_engine_runtime_core_and_no_cuda_graph(monkeypatch, artifacts, tmp_path):
    """Issue 24 #3: the runner sets runtime.DLA_core before deserializing a DLA engine, and refuses CUDA graphs for
    it; the runtime uses the process's one logger."""
    from edgedet.tensorrt_lib import logger

    runner, trt, cuda = _fake_runner(monkeypatch, artifacts, tmp_path, version="10.3.0", dla_core=1)
    assert ("deserialize", 1) in trt.log and ("Runtime", id(logger(trt))) in trt.log
    with pytest.raises(InputError, match="cuda_graph cannot be used with a DLA engine"):
        _fake_runner(monkeypatch, artifacts, tmp_path, dla_core=0, cuda_graph=True)


# ---------------------------------------------------------------- INT8 for TensorRT: NVIDIA ModelOpt's form
@pytest.fixture(scope="module")
def trt_int8(artifacts, images, tmp_path_factory):
    if importlib.util.find_spec("modelopt") is None:
        pytest.skip("nvidia-modelopt (edgedet[tensorrt-int8]) is not installed")
    from edgedet.converters.int8.builders import BuildContext, build_qdq_trt
    from edgedet.preprocess import Preprocessor

    m = Manifest.read(artifacts["onnx"])
    pre = Preprocessor(m.image_size, m.input.mean, m.input.std)
    tensors = [pre([np.roll(img, 31 * i, axis=1)])[0].copy() for i, img in enumerate(images * 2)]
    out = tmp_path_factory.mktemp("trt_int8") / "test_int8_tensorrt.onnx"
    ctx = BuildContext(tensors, m.input.name, "minmax", out.with_suffix(".ranges.json"), [], "-")
    return build_qdq_trt(artifacts["onnx"], out, ctx)


def test_tensorrt_int8_form_is_qdq_plus_fp16_with_residual_adds_quantized(trt_int8):
    """Issue 24 #2: the TensorRT INT8 ONNX keeps everything not quantized in FP16 (I/O FP32) and has Q/DQ on the
    residual Adds' inputs; it passes the TensorRT >= 10 check and is refused for 8.6 (opset 19, FP16 scales)."""
    from edgedet.converters.int8.modelopt_qdq import float_and_qdq_summary

    s = float_and_qdq_summary(trt_int8)
    assert s["float_types"] == ["FLOAT16"], s["float_types"]
    assert set(s["io"].values()) == {"FLOAT"}
    residual = [a for a in s["adds_with_qdq"] if "/backbone/blocks" in a]
    assert residual and len(s["adds_with_qdq"]) >= s["adds"] // 2, s
    assert _qdq_dtypes(trt_int8) == {"int8"}
    assert check_tensorrt_onnx(trt_int8, 1, 1).ok
    rep86 = check_tensorrt_onnx(trt_int8, 1, 1, version="8.6")
    assert "opset 19 is outside TensorRT 8.6's ONNX opset range" in " ".join(f.message for f in rep86.findings)
    assert Manifest.read(trt_int8).precision == "int8"


def test_modelopt_leaves_onnxruntime_quantization_unpatched(trt_int8):
    """ModelOpt patches ONNX Runtime's calibrators process-wide when it quantizes; it runs in a child process, so
    ONNX Runtime's own INT8 form built later in the same calibrate is ONNX Runtime's (a cached-range build failed
    with "Histogram has not been collected" otherwise)."""
    from onnxruntime.quantization import calibrate

    assert calibrate.HistogramCollector.collect_value.__module__.startswith("onnxruntime")
    assert calibrate.create_calibrator.__module__.startswith("onnxruntime")


def _qdq_dtypes(path):
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {str(inits[n.input[2]].dtype) for n in model.graph.node if n.op_type == "QuantizeLinear"}


def test_tensorrt_int8_form_runs_close_to_fp32_in_onnxruntime(trt_int8, artifacts, images):
    """The gate evaluates this file in ONNX Runtime (strategy row evaluate_backend): it loads and detects."""
    ref = Detector.load(artifacts["onnx"])
    det = Detector.load(trt_int8, backend="onnxruntime")
    for img in images:
        a, b = det(img, score_threshold=0.3), ref(img, score_threshold=0.3)
        assert abs(len(a) - len(b)) <= max(2, len(b) // 3)


def test_tensorrt_int8_float_patterns_stay_unquantized(artifacts, images, tmp_path):
    """The gate's fallback groups (node-name regexes, searched anywhere in the name) reach ModelOpt, which matches
    from the start of the name: the head predict convs get no Q/DQ when their group is kept in float."""
    if importlib.util.find_spec("modelopt") is None:
        pytest.skip("nvidia-modelopt (edgedet[tensorrt-int8]) is not installed")
    from edgedet.converters.int8.builders import BuildContext, build_qdq_trt
    from edgedet.preprocess import Preprocessor

    m = Manifest.read(artifacts["onnx"])
    pre = Preprocessor(m.image_size, m.input.mean, m.input.std)
    tensors = [pre([img])[0].copy() for img in images]
    ctx = BuildContext(tensors, m.input.name, "minmax", tmp_path / "r.json", [r"(class|box)_net/predict"], "-")
    path = build_qdq_trt(artifacts["onnx"], tmp_path / "t_int8_tensorrt.onnx", ctx)
    g = onnx.load(str(path)).graph
    producer = {o: n for n in g.node for o in n.output}
    convs = [n for n in g.node if n.op_type == "Conv"]
    quantized = {
        n.name for n in convs if producer.get(n.input[0]) and producer[n.input[0]].op_type == "DequantizeLinear"
    }
    predict = {n.name for n in convs if "_net/predict" in n.name}
    assert predict and not predict & quantized
    assert len(quantized) > len(convs) // 2
