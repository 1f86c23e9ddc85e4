from setuptools import find_packages, setup

# The package's top-level folders: edgedet/ is the core; converters/, runtimes/ and benchmarks/ are installed under
# the edgedet namespace. Every package below each root is found recursively (tests/test_packaging.py checks the
# built wheel against the source tree), except the folders in UNPACKAGED: one-off studies, the GPU-machine check and
# measured results, which run from a checkout.
ROOTS = {
    "edgedet": "edgedet",
    "edgedet.converters": "converters",
    "edgedet.runtimes": "runtimes",
    "edgedet.benchmarks": "benchmarks",
}
UNPACKAGED = ("benchmarks/studies", "benchmarks/gpu", "benchmarks/results")


def _packages() -> list[str]:
    out = []
    for name, folder in ROOTS.items():
        skip = [u[len(folder) + 1 :].replace("/", ".") for u in UNPACKAGED if u.startswith(folder + "/")]
        found = find_packages(folder, exclude=[p for s in skip for p in (s, s + ".*")])
        out += [name] + [f"{name}.{p}" for p in found]
    return out


EXPORT = ["torch>=2.2", "torchvision", "timm>=0.9", "onnx>=1.15", "onnxsim>=0.4", "onnxscript"]
ONNXRUNTIME = ["onnxruntime>=1.17"]
OPENVINO = ["openvino>=2024.0", "nncf>=2.10"]
# x86_64 and SBSA Linux with NVIDIA's pip wheels. TensorRT 8.6 never shipped as tensorrt-cu12 (its pip package is
# tensorrt==8.6.x), so the floor is 10.0. cuda-python's major must match the CUDA of those wheels (cu12): 13.x needs a
# CUDA 13 driver, which JetPack 6 and R535-R570 drivers do not have. Not for Jetson: JetPack ships its own TensorRT
# (python3-libnvinfer), which this extra would shadow; there use 'edgedet[jetson]' (cuda-python only).
TENSORRT = ["tensorrt-cu12>=10.0", "cuda-python>=12.3,<13"]
# INT8 for TensorRT (`edgedet calibrate --backend trt`, on the build machine, CPU is enough): NVIDIA ModelOpt's ONNX PTQ
# and the modules its quantize path imports. Not nvidia-modelopt[onnx]: on x86_64 Linux that extra pins onnx~=1.21 and
# onnxruntime-gpu, which cannot share an environment with the onnxruntime (CPU) package of the other extras.
TENSORRT_INT8 = [
    "nvidia-modelopt>=0.47",
    "onnx-graphsurgeon>=0.6.1",
    "onnxslim>=0.1.76",
    "lief",
    "ml-dtypes",
    "onnxscript",
] + ONNXRUNTIME
EXTRAS = {
    "export": EXPORT,
    "onnxruntime": ONNXRUNTIME,
    "openvino": OPENVINO,
    "tensorrt": TENSORRT,
    "tensorrt-int8": TENSORRT_INT8,
    "jetson": ["cuda-python>=12.3,<13"],
    "onnxruntime-gpu": ["onnxruntime-gpu>=1.17"],
    "eval": ["pycocotools>=2.0.7"],
    "plot": ["matplotlib>=3.7"],
    "supervision": ["supervision>=0.20"],
    "triton": ["tritonclient[grpc,http]>=2.40"],
    "ray": ["ray[data,serve]>=2.40"],
    # OpenVINO model_api reads edgedet IRs (export --model-api); it pins opencv-python-headless to 4.x
    "model-api": ["openvino-model-api>=0.4.7"],
    "video": ["av>=12"],  # annotated videos in H.264 (PyAV); without it OpenCV writes mp4v
}
EXTRAS["cpu"] = (
    EXPORT + ONNXRUNTIME + OPENVINO + EXTRAS["eval"] + EXTRAS["plot"] + EXTRAS["video"] + ["psutil", "scikit-image"]
)
EXTRAS["lint"] = ["ruff==0.17.6", "mypy>=1.10", "pre-commit>=3"]
EXTRAS["docs"] = ["mkdocs>=1.6"]
EXTRAS["dev"] = (
    EXTRAS["cpu"]
    + EXTRAS["triton"]
    + EXTRAS["ray"]
    + EXTRAS["lint"]
    + EXTRAS["docs"]
    + EXTRAS["model-api"]
    + EXTRAS["tensorrt-int8"]
    + ["pyyaml", "pytest>=7", "pytest-timeout>=2.2", "effdet==0.4.1", "build", "wheel"]
)

setup(
    name="edgedet",
    version="0.2.0",  # the one place; edgedet.__version__ and `edgedet --version` read it from the metadata
    description="EfficientDet (D0-D7, D7x, Lite0-4) from PyTorch to the edge: ONNX, OpenVINO, TensorRT, one runtime API",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=_packages(),
    package_data={"edgedet": ["paper_table2.json"], "edgedet.converters": ["data/*.json"]},
    package_dir={name: folder for name, folder in ROOTS.items()},
    install_requires=["numpy>=1.24", "opencv-python-headless>=4.8", "tqdm>=4.60"],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["edgedet=edgedet.cli:main"]},
)
