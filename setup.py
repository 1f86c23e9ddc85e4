from setuptools import find_packages, setup

# Core subpackages are found automatically; converters/, runtimes/, benchmarks/ are top-level folders
# installed under the edgedet namespace.
PACKAGES = find_packages(include=["edgedet", "edgedet.*"]) + [
    "edgedet.converters",
    "edgedet.runtimes",
    "edgedet.benchmarks",
]

EXPORT = ["torch>=2.2", "torchvision", "timm>=0.9", "onnx>=1.15", "onnxsim>=0.4", "onnxscript"]
ONNXRUNTIME = ["onnxruntime>=1.17"]
OPENVINO = ["openvino>=2024.0", "nncf>=2.10"]
# cuda-python's major must match the CUDA of the TensorRT wheels (cu12): 13.x needs a CUDA 13 driver, which
# JetPack 6 and R535-R570 drivers do not have.
TENSORRT = ["tensorrt-cu12>=8.6", "cuda-python>=12.3,<13"]
EXTRAS = {
    "export": EXPORT,
    "onnxruntime": ONNXRUNTIME,
    "openvino": OPENVINO,
    "tensorrt": TENSORRT,
    "onnxruntime-gpu": ["onnxruntime-gpu>=1.17"],
    "eval": ["pycocotools>=2.0.7"],
    "plot": ["matplotlib>=3.7"],
    "supervision": ["supervision>=0.20"],
    "triton": ["tritonclient[grpc,http]>=2.40"],
    "ray": ["ray[data,serve]>=2.40"],
}
EXTRAS["cpu"] = EXPORT + ONNXRUNTIME + OPENVINO + EXTRAS["eval"] + EXTRAS["plot"] + ["psutil", "scikit-image"]
EXTRAS["dev"] = (
    EXTRAS["cpu"]
    + EXTRAS["triton"]
    + EXTRAS["ray"]
    + ["pytest>=7", "pytest-timeout>=2.2", "effdet==0.4.1", "build", "wheel"]
)

setup(
    name="edgedet",
    version="0.1.0",
    description="EfficientDet (D0-D7, D7x, Lite0-4) from PyTorch to the edge: ONNX, OpenVINO, TensorRT, one runtime API",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=PACKAGES,
    package_data={"edgedet": ["paper_table2.json"]},
    package_dir={
        "edgedet": "edgedet",
        "edgedet.converters": "converters",
        "edgedet.runtimes": "runtimes",
        "edgedet.benchmarks": "benchmarks",
    },
    install_requires=["numpy>=1.24", "opencv-python-headless>=4.8", "tqdm>=4.60"],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["edgedet=edgedet.cli:main"]},
)
