# Two entry points, each creating its own virtual environment (.venv) on first use:
#   make bench   the main job: CPU benchmark sweep (D0-D2, OpenVINO + ONNX Runtime + effdet baseline), then
#                detection with the trained reference model (D0, synthetic shapes) on the default backend
#   make test    the test suite (tiny model; what CI runs)
PY ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out

.PHONY: bench test test-slow typecheck lint docs venv triton-server clean

venv: $(VENV)/.installed

$(VENV)/.installed: setup.py pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

bench: venv
	$(BIN)/edgedet bench --model d0,d1,d2 --backend openvino,onnxruntime --mode throughput --iters 30 --out $(OUT)/bench
	$(BIN)/python -m edgedet.data.synthetic $(OUT)/shapes --train 0 --val 8 --size 256 --seed 1
	$(BIN)/edgedet detect --model d0 --weights tests/assets/reference_d0_shapes_fp16.pth --imgsz 256 \
		--source $(OUT)/shapes/images --conf 0.4 --save $(OUT)/detect

# A real Triton Inference Server for the Triton client tests: nvidia-pytriton bundles the tritonserver binary
# (CPU, python backend) but pins numpy < 2, so it lives in its own environment (~370 MB, ~30 s).
TRITON_VENV ?= .venv-triton
triton-server: $(TRITON_VENV)/.installed

$(TRITON_VENV)/.installed:
	$(PY) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/python -m pip install -q --upgrade pip
	$(TRITON_VENV)/bin/python -m pip install -q 'nvidia-pytriton==0.7.0' 'onnxruntime>=1.17'
	touch $@

# CI's suite: everything but the tests marked slow (the 10k-frame soak), which `make test-slow` runs
test: venv triton-server
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: venv triton-server
	$(BIN)/python -m pytest -q -m slow

# Static checks of the TensorRT/CUDA code: mypy against tensorrt-stubs and cuda-python, and the names the code
# uses checked against what the real TensorRT 8.6 / 10 / 11 bindings define (typecheck/trt_names.json).
typecheck: venv
	PROJECT_PY=$(BIN)/python PY=$(PY) bash typecheck/run.sh

# ruff's lint rules and formatter (configured in pyproject.toml; .pre-commit-config.yaml runs the same)
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# the documentation site, strict: a broken link, a missing page or a stale CLI reference fails the build
docs: venv
	$(BIN)/mkdocs build --strict --site-dir $(OUT)/site

clean:
	rm -rf $(VENV) $(TRITON_VENV) $(OUT) build dist *.egg-info
