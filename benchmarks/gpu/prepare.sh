#!/usr/bin/env bash
# Here, with network: download the few wheels the lent GPU machine lacks into an ignored folder of the checkout,
# which travels with the working tree (the device tool's `carry`). The machine has Python 3.12, torch with CUDA,
# torchvision, timm, onnx, onnxruntime (CPU), opencv-python-headless, numpy, cupy, triton and pytest; it has no
# network and no registry.
#
#   benchmarks/gpu/prepare.sh [DEST]        # default DEST: .whl ; PYVER=3.11 for a CPU smoke test here
#
# The wheels (about 10 MB, refused above MAX_MB=15):
#   cuda-python, cuda-bindings, cuda-pathfinder  edgedet/cuda.py: the TensorRT runner's memory, streams, CUDA graphs
#   effdet, omegaconf, pyyaml, pycocotools       the effdet eager baseline (effdet imports pycocotools and omegaconf)
#   setuptools                                   pip install --no-build-isolation of this checkout, offline
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
DEST=${1:-$REPO/.whl}
PYVER=${PYVER:-3.12}
MAX_MB=${MAX_MB:-15}
PY=${PYTHON:-python3}
mkdir -p "$DEST"
rm -f "$DEST"/*.whl
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$PYVER" --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
    -d "$DEST" \
    "cuda-python>=12.3,<13" "cuda-bindings>=12.3,<13" "cuda-pathfinder>=1.1,<2" \
    "effdet==0.4.1" "omegaconf>=2.3" "pyyaml>=5.1" "pycocotools>=2.0.7" "setuptools>=70"
ls -l "$DEST"
KB=$(du -sk "$DEST" | cut -f1)
echo "carried wheels: $(ls "$DEST"/*.whl | wc -l), $((KB / 1024)).$(((KB % 1024) * 10 / 1024)) MB in $DEST"
if [ "$KB" -gt $((MAX_MB * 1024)) ]; then
    echo "over the ${MAX_MB} MB carry budget" >&2
    exit 1
fi
