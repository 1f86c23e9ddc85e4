"""TensorRT's INT8 form: NVIDIA TensorRT Model Optimizer's ONNX post-training quantization
(`modelopt.onnx.quantization.quantize`, quantize_mode int8, high_precision_dtype fp16), calibrated on the CPU with
ONNX Runtime.

What it writes, and why it is the form TensorRT >= 10 runs fastest: strongly typed builds run every layer in the
type the ONNX gives it, so everything not quantized is FP16 (graph inputs and outputs stay FP32, Cast at the edges);
Q/DQ sits on the inputs of the quantizable ops TensorRT fuses (Conv, and the residual input of the Adds that follow a
Conv, so the Add runs in the convolution's INT8 epilogue: TensorRT issues #1992/#3197), symmetric signed INT8 with
per-channel weights. The model is opset 19 (FP16 Q/DQ scales): TensorRT 8.6 cannot parse it (`edgedet check
--trt-version 8.6` says so).

ModelOpt runs in a child process (it patches ONNX Runtime's quantization classes process-wide), on a copy of the FP32
ONNX in a private folder (it writes intermediate files beside its input).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgedet.errors import BackendUnavailableError, ConversionError, InputError

EXTRA = "tensorrt-int8"
# edgedet's calibration methods -> ModelOpt's INT8 methods ({'entropy' (its default), 'max'}); ModelOpt has no
# percentile calibration: its default, entropy, stands in for it
METHODS = {"minmax": "max", "entropy": "entropy", "percentile": "entropy"}


def calibration_eps() -> list[str]:
    """ONNX Runtime execution providers for calibration: CUDA where this onnxruntime has it, else the CPU."""
    import onnxruntime as ort

    return ["cuda:0", "cpu"] if "CUDAExecutionProvider" in ort.get_available_providers() else ["cpu"]


def quantize_modelopt(
    fp32_onnx: Path, out: Path, tensors: list[np.ndarray], method: str, exclude: list[str], *, input_name: str
) -> dict:
    """Write the INT8 Q/DQ + FP16 ONNX of `fp32_onnx` to `out`; `exclude`: node-name regexes kept in float (FP16).
    Returns what was run (for the manifest). ModelOpt runs in a child process: when it quantizes it patches ONNX
    Runtime's quantization classes for the whole process (modelopt.onnx.quantization.ort_patching), which would change
    ONNX Runtime's own INT8 form (onnx_qdq.py) built after it in the same `edgedet calibrate`."""
    import importlib.util

    if importlib.util.find_spec("modelopt") is None:
        raise BackendUnavailableError("TensorRT INT8 (NVIDIA ModelOpt)", EXTRA)
    if method not in METHODS:
        raise InputError(f"--method must be one of {', '.join(METHODS)}")
    data = np.concatenate([np.asarray(t, np.float32).reshape(-1, *np.shape(t)[-3:]) for t in tensors])
    with tempfile.TemporaryDirectory(prefix="edgedet-modelopt-") as tmp:
        work = Path(tmp)
        shutil.copyfile(fp32_onnx, work / "fp32.onnx")
        np.save(work / "calib.npy", data)
        job = {
            "input_name": input_name,
            "method": METHODS[method],
            # ModelOpt applies re.match (anchored at the name's start); the gate's regexes are searches
            "exclude": [f".*(?:{p})" for p in exclude],
        }
        (work / "job.json").write_text(json.dumps(job))
        r = subprocess.run(
            [sys.executable, "-m", "edgedet.converters.int8.modelopt_qdq", str(work)], capture_output=True, text=True
        )
        if r.returncode != 0 or not (work / "int8.onnx").is_file():
            tail = " | ".join((r.stderr or r.stdout).strip().splitlines()[-3:])[-600:]
            raise ConversionError(f"ModelOpt INT8 quantization failed: {tail}")
        shutil.move(work / "int8.onnx", out)
        return {**json.loads((work / "result.json").read_text()), "calibration_images": int(data.shape[0])}


def _child(work: Path) -> int:
    """The ModelOpt run itself, in its own process (see quantize_modelopt)."""
    import modelopt
    from modelopt.onnx.quantization import quantize

    job = json.loads((work / "job.json").read_text())
    quantize(
        str(work / "fp32.onnx"),
        quantize_mode="int8",
        calibration_data={job["input_name"]: np.load(work / "calib.npy")},
        calibration_method=job["method"],
        calibration_eps=calibration_eps(),
        nodes_to_exclude=job["exclude"] or None,
        high_precision_dtype="fp16",
        output_path=str(work / "int8.onnx"),
        log_level="ERROR",
    )
    result = {"quantizer": f"nvidia-modelopt {modelopt.__version__}", "modelopt_method": job["method"]}
    (work / "result.json").write_text(json.dumps({**result, "high_precision_dtype": "fp16"}))
    return 0


def float_and_qdq_summary(path: Path) -> dict:
    """What an INT8 TensorRT ONNX is made of: the float types of the tensors its compute nodes produce (not Cast at the
    FP32 edges, not Constant parameters such as Resize's FP32 `scales`), its I/O types, and the Adds with a
    DequantizeLinear on an input (residual Adds quantized for TensorRT's Conv+Add fusion)."""
    import onnx

    m = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    g = m.graph
    producer = {o: n for n in g.node for o in n.output}
    float_types = set()
    for v in g.value_info:
        t = v.type.tensor_type.elem_type
        if t in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16) and producer.get(v.name) is not None:
            if producer[v.name].op_type not in ("Cast", "Constant"):
                float_types.add(onnx.TensorProto.DataType.Name(t))
    adds = [n for n in g.node if n.op_type == "Add"]
    qdq_adds = [
        n.name for n in adds if any(producer.get(i) and producer[i].op_type == "DequantizeLinear" for i in n.input)
    ]
    io = {v.name: onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type) for v in list(g.input) + list(g.output)}
    return {"float_types": sorted(float_types), "io": io, "adds": len(adds), "adds_with_qdq": qdq_adds}


if __name__ == "__main__":
    raise SystemExit(_child(Path(sys.argv[1])))
