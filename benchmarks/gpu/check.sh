#!/usr/bin/env bash
# The GPU check for the lent machine, offline, from the repository root (under 7 minutes):
#
#   benchmarks/gpu/check.sh OUT_DIR [WHEELS_DIR]      # WHEELS_DIR: default .whl (benchmarks/gpu/prepare.sh)
#
# 1. env      python, torch/CUDA, GPU, cupy, triton, nvidia-smi               -> OUT/env.txt
# 2. install  a venv over the machine's own packages (--system-site-packages); the carried wheels (--no-index
#             --no-deps); this checkout, editable, with --no-build-isolation (no network)
# 3. pytest   the GPU tests (-o addopts=: no pytest-timeout needed): torch CUDA FP16 vs CPU FP32 detections,
#             CUDA-graph replay vs eager, batch 32 vs 32 single images, the TensorRT runner's buffers and CUDA-graph
#             capture through a fake engine whose kernel runs on the runner's stream (cupy)  -> OUT/pytest.log
# 4. bench    benchmarks/gpu/bench.py: d0 (d1 if time allows) at batch 1 and 32, eager FP32, FP16 + channels-last,
#             + CUDA graph, + torch.compile, and the effdet eager baseline      -> OUT/bench.{json,txt,png}
# Everything is also in OUT/check.log; OUT/COMMAND says what ran. At most 7 files in OUT.
# Without CUDA (a CPU smoke test) the GPU-only parts skip, with the reason, and the rest runs.
# Overrides: PYTHON (default python3.12, else python3), WORK_DIR (venv and artifact cache; default
# /tmp/edgedet-gpu), T_PYTEST (150 s), T_TOTAL (400 s), BENCH_ARGS (extra bench.py arguments).
set -u -o pipefail
OUT=${1:?usage: check.sh OUT_DIR [WHEELS_DIR]}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
WHEELS=${2:-$REPO/.whl}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$REPO" || exit 2
PY=${PYTHON:-$(command -v python3.12 || command -v python3)}
WORK=${WORK_DIR:-${TMPDIR:-/tmp}/edgedet-gpu}
VENV=$WORK/venv
VPY=$VENV/bin/python
T_TOTAL=${T_TOTAL:-400}
T_PYTEST=${T_PYTEST:-150}
STARTED=$(date +%s)
export EDGEDET_CACHE=$WORK/cache PYTHONUNBUFFERED=1 CI=true
exec > >(tee "$OUT/check.log") 2>&1
{
    echo "# $(date -u '+%F %T UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "benchmarks/gpu/check.sh $*"
} >"$OUT/COMMAND"
step() { echo "=== $1 ($(($(date +%s) - STARTED)) s)"; }

step env
{
    echo "python: $PY ($("$PY" --version 2>&1))"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "nvidia-smi: none"
    "$PY" - <<'PYEOF'
import importlib
for mod in ("torch", "torchvision", "timm", "onnx", "onnxruntime", "cv2", "numpy", "cupy", "triton", "pytest"):
    try:
        m = importlib.import_module(mod)
        print(mod, getattr(m, "__version__", "present"))
    except Exception as e:
        print(mod, "absent:", type(e).__name__)
import torch
print("cuda", torch.version.cuda, "available", torch.cuda.is_available(), "devices", torch.cuda.device_count())
PYEOF
} 2>&1 | tee "$OUT/env.txt"

step install
rm -rf "$VENV"
mkdir -p "$WORK"
"$PY" -m venv --system-site-packages "$VENV" || exit 2
# the machine's packages are $PY's: where $PY is itself a venv (a smoke test), --system-site-packages alone would
# see its base interpreter's instead, so $PY's site-packages are added too
"$PY" -c "import site; print('\n'.join(site.getsitepackages()))" \
    >"$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/machine-packages.pth"
mapfile -t CARRIED < <(ls "$WHEELS"/*.whl 2>/dev/null)
echo "carried: ${#CARRIED[@]} wheels, $(du -sh "$WHEELS" 2>/dev/null | cut -f1)"
PIP=("$VPY" -m pip install --no-index --no-deps --disable-pip-version-check --no-compile --quiet)
[ "${#CARRIED[@]}" -eq 0 ] || "${PIP[@]}" "${CARRIED[@]}" || echo "WARNING: some carried wheels did not install"
"${PIP[@]}" --no-build-isolation -e "$REPO" || { echo "edgedet did not install"; exit 2; }
"$VPY" -c "import edgedet, edgedet.runtimes, edgedet.converters; print('edgedet', edgedet.__version__, 'from', edgedet.__file__)" || exit 2

step pytest
timeout -k 5 "$T_PYTEST" "$VPY" -m pytest -o addopts= -q -p no:cacheprovider -rs -m gpu \
    tests/runtimes/test_torch_cuda.py tests/runtimes/test_tensorrt_fake_engine.py 2>&1 | tee "$OUT/pytest.log"
PYTEST_RC=${PIPESTATUS[0]}
echo "pytest rc=$PYTEST_RC"

step bench
LEFT=$((T_TOTAL - ($(date +%s) - STARTED) - 20))
[ "$LEFT" -ge 60 ] || LEFT=60
# shellcheck disable=SC2086
timeout -k 10 "$((LEFT + 30))" "$VPY" benchmarks/gpu/bench.py --out "$OUT" --budget-s "$LEFT" ${BENCH_ARGS:-}
BENCH_RC=$?

step done
echo "total $(($(date +%s) - STARTED)) s; pytest rc=$PYTEST_RC, bench rc=$BENCH_RC; files: $(ls "$OUT" | tr '\n' ' ')"
[ "$PYTEST_RC" -eq 0 ] && [ "$BENCH_RC" -eq 0 ]
