#!/usr/bin/env bash
# One-command GPU verification, offline: run from the repo root on the GPU machine.
#
#   benchmarks/gpu/run.sh WHEELS_DIR OUT_DIR
#
# WHEELS_DIR comes from prepare_wheels.sh. Steps (each with its own time limit; a failing step does not stop the
# others): venv + offline install, nvidia-smi and versions, the GPU tests (pytest -m "gpu or tensorrt"), the
# benchmark (gpu_bench.py). Everything lands in OUT_DIR; steps.txt lists each step's exit status and time.
# Exit status: non-zero when the GPU tests failed (or could not run); the benchmark's outcome is in bench.txt.
#
# Environment overrides: PYTHON (default python3.12, else python3), WORK_DIR (venv and artifact cache, default
# /tmp/edgedet-gpu), T_TOTAL (default 570 s: the whole run stays under 10 minutes), per-step limits T_INSTALL
# T_ENV T_PYTEST (180 30 150 s) and T_BENCH (default: what is left of T_TOTAL, at least 90 s), BENCH_ARGS
# (extra gpu_bench.py arguments, e.g. "--models d0"), SKIP_INSTALL=1 (use $PYTHON as it is, no venv).
set -u -o pipefail

WHEELS=$(cd "${1:?usage: run.sh WHEELS_DIR OUT_DIR}" && pwd) || exit 2
mkdir -p "${2:?usage: run.sh WHEELS_DIR OUT_DIR}"
OUT=$(cd "$2" && pwd)
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO" || exit 2
PY=${PYTHON:-$(command -v python3.12 || command -v python3)}
WORK=${WORK_DIR:-${TMPDIR:-/tmp}/edgedet-gpu}
VENV="$WORK/venv"
export EDGEDET_CACHE=${EDGEDET_CACHE:-$WORK/cache}    # artifacts (ONNX, engines) outside the checkout
export PYTHONUNBUFFERED=1
STEPS="$OUT/steps.txt"
: >"$STEPS"
STARTED=$(date +%s)

step() {  # step NAME SECONDS COMMAND... : run with a time limit, output to the console and OUT/NAME.log
    local name=$1 limit=$2 t0 rc
    shift 2
    t0=$(date +%s)
    echo "=== $name (limit ${limit}s)"
    timeout --kill-after=5 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    rc=${PIPESTATUS[0]}
    [ "$rc" -eq 124 ] && echo "TIMED OUT after ${limit}s" >>"$OUT/$name.log"
    printf '%-10s rc=%-4s %4ss\n' "$name" "$rc" "$(($(date +%s) - t0))" | tee -a "$STEPS"
    return "$rc"
}

pip_offline() {  # --no-compile: byte-compiling every installed package costs a minute; imports compile lazily
    "$VPY" -m pip install --no-index --find-links "$WHEELS" --disable-pip-version-check --no-compile "$@"
}

make_venv() {
    rm -rf "$VENV"
    mkdir -p "$WORK"
    # --system-site-packages: the preinstalled torch (and its CUDA libraries) are used, not reinstalled.
    "$PY" -m venv --system-site-packages "$VENV" || "$PY" -m venv --system-site-packages --without-pip "$VENV"
}

install_all() {  # venv, then every package from WHEELS only (no index), then this checkout (editable)
    set -x
    make_venv || return 1
    "$VPY" -m pip --version || return 1
    local info minor cuda ort
    info=$("$VPY" -c "import torch; print(torch.__version__.split('.')[1], (torch.version.cuda or '12').split('.')[0])") \
        || { echo "torch is not importable from $PY: it must be preinstalled"; return 1; }
    read -r minor cuda <<<"$info"
    # torchvision (effdet, timm) must match torch: 2.N <-> 0.(N+15); installed only if the machine lacks it
    "$VPY" -c "import torchvision" 2>/dev/null || pip_offline --no-deps "torchvision==0.$((minor + 15)).*" \
        || echo "WARNING: no torchvision 0.$((minor + 15)) wheel for torch 2.$minor: effdet and timm will fail"
    # the onnxruntime-gpu build for torch's CUDA: it loads the CUDA/cuDNN libraries torch brought
    if [ "$cuda" -ge 13 ]; then ort="onnxruntime-gpu>=1.27"; else ort="onnxruntime-gpu>=1.17,<1.27"; fi
    # the code under test is this checkout (editable); the prepared edgedet wheel only if that cannot be built
    pip_offline --no-deps -e "$REPO" || pip_offline --no-deps edgedet \
        || { echo "neither this checkout nor an edgedet wheel could be installed"; return 1; }
    pip_offline "edgedet[onnxruntime-gpu,eval,plot]" "$ort" numpy opencv-python-headless tqdm pytest onnx \
        scikit-image matplotlib psutil openvino timm "effdet==0.4.1" || return 1
    pip_offline onnxsim || echo "onnxsim not installed (optional: ONNX exports stay unsimplified)"
    # cuda-python only serves TensorRT, and only where torch did not bring cuda.bindings already
    if "$VPY" -c "import tensorrt" 2>/dev/null && ! "$VPY" -c "from cuda.bindings import runtime" 2>/dev/null; then
        pip_offline "cuda-python>=12.3,<13" || echo "cuda-python not installed: TensorRT rows will fail"
    fi
    "$VPY" -c "import edgedet.runtimes, edgedet.converters, edgedet.benchmarks, edgedet; print('edgedet from', edgedet.__file__)"
}

env_info() {  # versions of everything that matters, and the checkout
    date -u
    uname -a
    echo "python: $PY -> $VPY"
    echo "repo: $REPO  commit: $(git rev-parse HEAD 2>/dev/null)"
    git status --short 2>/dev/null | head -20
    "$VPY" - <<'PYEOF'
import importlib, platform
import torch
print("python", platform.python_version())
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
print("cuda available", torch.cuda.is_available(), "devices", torch.cuda.device_count())
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"  cuda:{i} {p.name} {p.total_memory / 2**30:.1f} GiB, compute {p.major}.{p.minor}")
from importlib.metadata import version
for mod in ("torchvision", "onnxruntime", "onnx", "onnxsim", "openvino", "tensorrt", "timm", "effdet", "numpy", "cv2"):
    try:
        m = importlib.import_module(mod)
        extra = m.get_available_providers() if mod == "onnxruntime" else ""
        print(mod, getattr(m, "__version__", None) or version(mod), extra)
    except Exception as e:
        print(mod, "absent:", type(e).__name__, str(e).splitlines()[0][:150] if str(e) else "")
PYEOF
    "$VPY" -m pip freeze >"$OUT/pip-freeze.txt" 2>&1
}

run_pytest() {
    local extra=()
    # a non-editable edgedet must not be shadowed by the checkout's edgedet/ folder on sys.path
    if ! "$VPY" -c "import edgedet.runtimes" 2>/dev/null; then
        export PYTHONSAFEPATH=1
        extra=(--import-mode=importlib)
    fi
    "$VPY" -m pytest -m "gpu or tensorrt" -q -p no:cacheprovider "${extra[@]}" tests/
}

run_bench() {
    # shellcheck disable=SC2086
    "$VPY" benchmarks/gpu/gpu_bench.py --out "$OUT" --budget-s "$((T_BENCH - 30))" ${BENCH_ARGS:-}
}

T_TOTAL=${T_TOTAL:-570} T_INSTALL=${T_INSTALL:-180} T_ENV=${T_ENV:-30} T_PYTEST=${T_PYTEST:-150} T_BENCH=${T_BENCH:-}
if [ "${SKIP_INSTALL:-0}" = 1 ]; then VPY=$PY; else VPY="$VENV/bin/python"; fi
export WHEELS OUT REPO PY WORK VENV VPY T_BENCH BENCH_ARGS=${BENCH_ARGS:-}
export -f make_venv pip_offline install_all env_info run_pytest run_bench

echo "edgedet GPU run: repo $REPO, wheels $WHEELS, out $OUT, python $PY"
{   # for benchmarks/results/gpu_<date>/COMMAND
    echo "# $(date -u '+%F %T UTC'), commit $(git rev-parse --short HEAD 2>/dev/null), $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
    env | grep -E '^(T_[A-Z]+|BENCH_ARGS|PYTHON|WORK_DIR)=' | sed 's/^/# env: /'
    echo "benchmarks/gpu/run.sh WHEELS_DIR $OUT"
} >"$OUT/COMMAND"
step nvidia-smi 20 nvidia-smi
mv -f "$OUT/nvidia-smi.log" "$OUT/nvidia-smi.txt"
[ "${SKIP_INSTALL:-0}" = 1 ] || step install "$T_INSTALL" bash -c install_all
step env "$T_ENV" bash -c env_info
step pytest_gpu "$T_PYTEST" bash -c run_pytest
PYTEST_RC=$(awk '$1 == "pytest_gpu" {sub("rc=", "", $2); print $2}' "$STEPS")
# the benchmark gets what is left of T_TOTAL (at least 90 s) unless T_BENCH is set
[ -n "$T_BENCH" ] || T_BENCH=$((T_TOTAL - ($(date +%s) - STARTED)))
[ "$T_BENCH" -ge 90 ] || T_BENCH=90
step bench "$T_BENCH" bash -c run_bench || { [ -f "$OUT/bench.txt" ] && echo "partial results:" && cat "$OUT/bench.txt"; }

echo "total $(($(date +%s) - STARTED)) s; steps:"
cat "$STEPS"
if [ "${PYTEST_RC:-1}" != 0 ]; then
    echo "GPU tests FAILED (rc=$PYTEST_RC): see $OUT/pytest_gpu.log"
    exit 1
fi
echo "GPU tests passed; results in $OUT"
