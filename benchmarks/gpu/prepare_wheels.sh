#!/usr/bin/env bash
# Download, on a machine WITH network, every wheel the offline GPU run (run.sh) needs, for CPython 3.12 on
# manylinux x86_64. torch is not downloaded: the GPU machine has it preinstalled.
#
#   benchmarks/gpu/prepare_wheels.sh OUT_DIR
#
# A package that fails is reported in OUT_DIR/download-summary.txt and the script goes on; it exits non-zero
# only when an essential package (one the GPU tests or the torch rows need) is missing.
set -u -o pipefail

OUT=${1:?usage: prepare_wheels.sh OUT_DIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
REPO=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-python3}
LOG="$OUT/download.log"
SUMMARY="$OUT/download-summary.txt"
: >"$LOG"
: >"$SUMMARY"

PLATFORMS=(manylinux1_x86_64 manylinux2010_x86_64 manylinux2014_x86_64 manylinux_2_17_x86_64
           manylinux_2_24_x86_64 manylinux_2_27_x86_64 manylinux_2_28_x86_64)
TARGET=(--python-version 3.12 --implementation cp --only-binary=:all: --find-links "$OUT" -d "$OUT")
for p in "${PLATFORMS[@]}"; do TARGET+=(--platform "$p"); done

# Everything the tests and the benchmark import, besides torch/torchvision/timm/effdet (below, without deps:
# their dependency on torch would pull a second torch and its CUDA libraries). openvino: the tests' shared
# `artifacts` fixture exports an OpenVINO IR. setuptools/wheel: to install the repo (editable) offline.
# onnxruntime-gpu: 1.26 is the last PyPI release built for CUDA 12 (1.27 on need CUDA 13 and cuDNN 9 for CUDA 13).
ESSENTIAL=(numpy opencv-python-headless tqdm pytest onnx "onnxruntime-gpu>=1.17,<1.27" scikit-image matplotlib
           psutil openvino pycocotools omegaconf pyyaml huggingface_hub safetensors "setuptools>=68" wheel)
NO_DEPS=(timm effdet==0.4.1)
# The CUDA 13 build too (no new deps): run.sh installs the one that matches the CUDA of the preinstalled torch
# (torch >= 2.11 on PyPI is a CUDA 13 build). cuda-python: only for TensorRT, installed by run.sh only then.
OPTIONAL=(onnxsim "cuda-python>=12.3,<13")
OPTIONAL_NO_DEPS=("onnxruntime-gpu>=1.27")
FAILED_ESSENTIAL=0

note() { echo "$*" | tee -a "$SUMMARY"; }

LAST="$OUT/.last-pip.log"

pipcall() {  # pipcall COMMAND ARGS... -> pip's status; its output goes to $LAST and the log
    echo "+ pip $*" >>"$LOG"
    "$PY" -m pip "$@" >"$LAST" 2>&1
    local rc=$?
    cat "$LAST" >>"$LOG"
    return $rc
}

download() { pipcall download "${TARGET[@]}" "$@"; }

why() {  # the last error line of the last pip call, for the summary
    grep -E "ERROR|error:" "$LAST" | tail -1 | cut -c1-220
}

essential() {
    if download "${ESSENTIAL[@]}"; then
        note "ok       ${ESSENTIAL[*]} (+ dependencies)"
        return
    fi
    note "one resolve of the essential set failed ($(why)); retrying one by one"
    for pkg in "${ESSENTIAL[@]}"; do
        if download "$pkg"; then note "ok       $pkg"; else note "FAILED   $pkg: $(why)"; FAILED_ESSENTIAL=1; fi
    done
}

no_deps() {
    for pkg in "${NO_DEPS[@]}"; do
        if download --no-deps "$pkg"; then note "ok       $pkg (no deps)"; else note "FAILED   $pkg: $(why)"; FAILED_ESSENTIAL=1; fi
    done
}

optional() {
    for pkg in "${OPTIONAL[@]}"; do
        if download "$pkg"; then note "ok       $pkg"; else note "skipped  $pkg (optional): $(why)"; fi
    done
    for pkg in "${OPTIONAL_NO_DEPS[@]}"; do
        if download --no-deps "$pkg"; then note "ok       $pkg (no deps)"; else note "skipped  $pkg (optional): $(why)"; fi
    done
}

torchvision() {
    # torchvision must match the preinstalled torch (2.N <-> 0.N+15); run.sh installs the matching one only if
    # the GPU machine lacks torchvision. One wheel per torch minor from 2.4 on, ~8 MB each.
    local got=()
    for minor in $(seq 19 29); do
        if download --no-deps "torchvision==0.${minor}.*"; then got+=("0.$minor"); fi
    done
    note "ok       torchvision (no deps) for: ${got[*]:-none}"
}

tensorrt() {
    # PyPI carries tensorrt-cu12 and tensorrt-cu12-libs as sdist stubs (wheel-stub) that fetch the real wheels
    # from pypi.nvidia.com at install time: no use offline. Only a real libs wheel makes TensorRT shippable.
    if download --no-deps tensorrt-cu12-libs; then
        download --no-deps tensorrt-cu12-bindings && download --no-deps tensorrt-cu12 \
            && note "ok       tensorrt-cu12 (+ libs, bindings)" \
            || note "skipped  tensorrt: libs wheel found but bindings/metapackage missing: $(why)"
    else
        note "skipped  tensorrt: no tensorrt-cu12-libs wheel for cp312 on this index (PyPI has only the sdist" \
             "stub that downloads from pypi.nvidia.com); TensorRT rows run only where the GPU machine has it"
    fi
}

edgedet_wheel() {
    # Built from a copy of the tree (tracked + untracked, not ignored) so the checkout gets no build/ folder.
    local tmp
    tmp=$(mktemp -d)
    git -C "$REPO" ls-files -co --exclude-standard -z \
        | tar -C "$REPO" --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -C "$tmp" -xf -
    echo "# edgedet from $REPO, copied to $tmp" >>"$LOG"
    if pipcall wheel --no-deps "$tmp" -w "$OUT"; then
        note "ok       edgedet wheel ($(cd "$OUT" && ls edgedet-*.whl | tr '\n' ' '))"
    else
        note "FAILED   edgedet wheel: $(why) (run.sh installs the checkout itself; the wheel is its fall-back)"
    fi
    rm -rf "$tmp"
}

essential
no_deps
optional
torchvision
tensorrt
edgedet_wheel

rm -f "$LAST"
note "wheels: $(ls "$OUT"/*.whl 2>/dev/null | wc -l), total size: $(du -sh "$OUT" | cut -f1)"
if [ "$FAILED_ESSENTIAL" -ne 0 ]; then
    note "ESSENTIAL PACKAGES MISSING: the GPU run will not install; see $LOG"
    exit 1
fi
