"""A real NVIDIA Triton Inference Server for the tests: the `tritonserver` binary bundled in nvidia-pytriton,
serving one model of a repository written by `edgedet export --format triton --backend onnxruntime`.

The pip-installed Triton has only the python backend (no onnxruntime backend: that ships in NGC containers), so
the model runs as a python-backend model that calls ONNX Runtime on the repository's 1/model.onnx. Everything a
client sees comes from the repository's config.pbtxt: tensor names, datatypes, dims, max_batch_size, dynamic
batching and the manifest parameter. Run with the .venv-triton interpreter (nvidia-pytriton pins numpy < 2):

    .venv-triton/bin/python tests/integrations/triton_server.py REPO MODEL --http 8000 --grpc 8001 --metrics 8002

Prints "READY http=... grpc=..." once the model is ready (a line for people: the tests ask the server's
model-ready endpoint, since Triton's own log shares the pipe); SIGTERM or SIGINT stops the server.
"""

import argparse
import os
import signal
import sys
import sysconfig

# pytriton's python-backend stub links libpython3.X by name: put this interpreter's own first (a pyenv build
# next to a distribution's libpython3.X would mix two builds); pytriton passes os.environ on to tritonserver
_libdir = sysconfig.get_config_var("LIBDIR")
if sysconfig.get_config_var("Py_ENABLE_SHARED") and _libdir:
    os.environ["LD_LIBRARY_PATH"] = ":".join(p for p in (_libdir, os.environ.get("LD_LIBRARY_PATH")) if p)
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from pytriton.decorators import batch  # noqa: E402
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor  # noqa: E402
from pytriton.triton import Triton, TritonConfig  # noqa: E402
from tritonclient.grpc import model_config_pb2 as pb  # noqa: E402

NUMPY = {
    "TYPE_UINT8": np.uint8,
    "TYPE_FP32": np.float32,
    "TYPE_FP16": np.float16,
    "TYPE_INT64": np.int64,
    "TYPE_INT32": np.int32,
}


def tensors(entries) -> list:
    return [
        Tensor(name=t.name, dtype=NUMPY[pb.DataType.Name(t.data_type)], shape=tuple(int(d) for d in t.dims))
        for t in entries
    ]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("repo")
    ap.add_argument("model")
    ap.add_argument("--http", type=int, required=True)
    ap.add_argument("--grpc", type=int, required=True)
    ap.add_argument("--metrics", type=int, required=True)
    ap.add_argument("--workspace")
    a = ap.parse_args()
    folder = os.path.join(a.repo, a.model)
    cfg = text_format.Parse(open(os.path.join(folder, "config.pbtxt")).read(), pb.ModelConfig())
    session = ort.InferenceSession(os.path.join(folder, "1", "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_outputs = [o.name for o in session.get_outputs()]
    out_specs = {o.name: (NUMPY[pb.DataType.Name(o.data_type)], tuple(int(d) for d in o.dims)) for o in cfg.output}

    @batch
    def infer(**inputs):
        outs = dict(zip(onnx_outputs, session.run(onnx_outputs, inputs)))
        n = next(iter(inputs.values())).shape[0]
        return {k: np.asarray(outs[k], dt).reshape(n, *dims) for k, (dt, dims) in out_specs.items()}

    batcher = DynamicBatcher(
        max_queue_delay_microseconds=cfg.dynamic_batching.max_queue_delay_microseconds,
        preferred_batch_size=list(cfg.dynamic_batching.preferred_batch_size),
    )
    triton = Triton(
        config=TritonConfig(http_port=a.http, grpc_port=a.grpc, metrics_port=a.metrics, log_verbose=0),
        workspace=a.workspace,
    )
    triton.bind(
        model_name=cfg.name,
        infer_func=infer,
        inputs=tensors(cfg.input),
        outputs=tensors(cfg.output),
        config=ModelConfig(max_batch_size=cfg.max_batch_size, batcher=batcher),
        strict=True,
    )
    # the repository's config parameters (the manifest) reach the served config, as tritonserver would load them
    # from config.pbtxt; pytriton exposes no public way to add them
    for model in triton._model_manager.models:
        params = model._get_triton_model_config().backend_parameters
        params.update({k: v.string_value for k, v in cfg.parameters.items()})
    try:
        triton.run()
        print(f"READY http={a.http} grpc={a.grpc}", flush=True)
        triton.serve()
    except KeyboardInterrupt:
        pass
    finally:
        triton.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
