#!/usr/bin/env bash
# Static checks of the TensorRT / CUDA code; no GPU, no TensorRT, only PyPI needed:
#   1. mypy: converters/tensorrt_engine.py, runtimes/tensorrt_runner.py, edgedet/cuda.py, edgedet/tensorrt_lib.py
#      against tensorrt-stubs 10.13 and cuda-python 12.x (cuda.bindings.runtime), in its own venv typecheck/.venv
#   2. mypy: the public API (edgedet/api.py, registry.py, manifest.py, runtimes/base.py, runtimes/detector.py)
#   3. tests/converters/test_trt_names.py: each TensorRT name the code uses exists in TensorRT 8.6, 10 and 11
#      (typecheck/trt_names.json, written by typecheck/extract_trt_names.py), with the project's .venv
# Usage: typecheck/run.sh   (PY: python for typecheck/.venv, default python3.11; PROJECT_PY: default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-$(command -v python3.11 || command -v python3)}
VENV=typecheck/.venv
if ! cmp -s typecheck/requirements.txt "$VENV/requirements.installed"; then
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r typecheck/requirements.txt
    "$VENV/bin/python" typecheck/prepare_stubs.py     # patch tensorrt-stubs, generate cuda-python stubs
    cp typecheck/requirements.txt "$VENV/requirements.installed"
fi

status=0   # run every check, fail if any fails
echo "== mypy: TensorRT and CUDA code against tensorrt-stubs and cuda-python"
"$VENV/bin/mypy" --config-file typecheck/mypy.ini || status=1

echo "== mypy: the public API"
"$VENV/bin/mypy" --config-file typecheck/mypy-api.ini || status=1

echo "== TensorRT names used by the code, in TensorRT 8.6, 10 and 11"
PROJECT_PY=${PROJECT_PY:-.venv/bin/python}
[ -x "$PROJECT_PY" ] || PROJECT_PY=$VENV/bin/python
"$PROJECT_PY" -m pytest -q -p no:cacheprovider tests/converters/test_trt_names.py || status=1
exit $status
