"""What pip installs is what is tested: the wheel, built as a user builds it (`python -m build --wheel`), holds every
module of the source tree; installed into a fresh venv it runs a real workflow (export, calibrate, detect, eval); and
a second fresh venv with only the wheel and the two CPU runtimes (pip resolves its dependencies; no torch) runs
detection and benchmarks on an artifact made in the first, while a command that needs torch names the extra."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.setup_py import REPO, setup_py, source_modules, wheel_path

# modules whose backend library is absent here import lazily (TensorRT's import on use); those of an absent
# library are skipped by the import check
LIBRARY_OF = {"onnxruntime_runner": "onnxruntime", "openvino_runner": "openvino"}


def _purelib(py: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(subprocess.run([str(py), "-c", code], capture_output=True, text=True, check=True).stdout.strip())


def _venv(path: Path, with_pip: bool) -> Path:
    venv.EnvBuilder(with_pip=with_pip, clear=True).create(path)
    return path / "bin"


def _run(cmd: list, cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "CI": "true", **(env or {})}
    full_env.pop("PYTHONPATH", None)
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout)


def _ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, f"{' '.join(r.args)}\nstdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    _ok(_run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, REPO], cwd=dist))
    return next(dist.glob("edgedet-*.whl"))


def test_wheel_holds_every_module_of_the_source_tree(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = source_modules()
    missing = sorted(m for m, p in modules.items() if wheel_path(m, p) not in names)
    assert not missing, f"modules of the source tree missing from the wheel: {missing}"
    assert "edgedet.converters.int8.pipeline" in modules and "edgedet.benchmarks.harness" in modules
    kwargs, module = setup_py()
    for package, patterns in kwargs.get("package_data", {}).items():
        folder = REPO / module["ROOTS"].get(package, package.replace(".", "/"))
        for pattern in patterns:
            for f in folder.glob(pattern):
                assert f"{package.replace('.', '/')}/{f.relative_to(folder)}" in names, f"data file {f} not in wheel"
    # nothing outside the edgedet namespace, and no study, GPU check, results or tests
    tops = {n.split("/")[0] for n in names if not n.startswith("edgedet-")}
    assert tops == {"edgedet"}, tops
    unpackaged = ("edgedet/benchmarks/studies/", "edgedet/benchmarks/gpu/", "edgedet/benchmarks/results/")
    assert not [n for n in names if n.startswith(unpackaged)]


@pytest.fixture(scope="module")
def wheel_env(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed (not editable); its dependencies come from this interpreter's
    site-packages, appended after the venv's own (a plain path entry: the editable edgedet's .pth is not run)."""
    root = tmp_path_factory.mktemp("wheel-venv")
    bin_dir = _venv(root / "venv", with_pip=False)
    site = _purelib(bin_dir / "python")
    _ok(_run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site, wheel], cwd=root))
    import site as _site

    (site / "zz_test_dependencies.pth").write_text("\n".join(_site.getsitepackages()) + "\n")
    # console script, as pip would write it into the venv's bin
    script = bin_dir / "edgedet"
    script.write_text(f"#!{bin_dir / 'python'}\nimport sys\nfrom edgedet.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    return bin_dir


def test_every_module_imports_from_the_installed_wheel(wheel_env, tmp_path):
    import importlib.util

    mods = [
        m
        for m in source_modules()
        if not m.endswith(".__main__") and importlib.util.find_spec(LIBRARY_OF.get(m.rsplit(".", 1)[-1], "sys"))
    ]
    code = (
        f"import importlib\nfor m in {mods!r}:\n    importlib.import_module(m)\nimport edgedet; print(edgedet.__file__)"
    )
    r = _ok(_run([wheel_env / "python", "-c", code], cwd=tmp_path))
    assert r.stdout.strip().startswith(str(_purelib(wheel_env / "python")))  # the installed copy, not the checkout
    version = _ok(_run([wheel_env / "edgedet", "--version"], cwd=tmp_path)).stdout.strip()
    assert version == f"edgedet {setup_py()[0]['version']}"


@pytest.fixture(scope="module")
def workflow(wheel_env, test_weights, tmp_path_factory) -> Path:
    """export -> calibrate -> detect -> eval, each through the wheel's own `edgedet` command, outside the checkout."""
    work = tmp_path_factory.mktemp("workflow")
    edgedet = wheel_env / "edgedet"
    _ok(_run([wheel_env / "python", "-m", "edgedet.data.synthetic", "data", "--train", "0", "--val", "6",
              "--size", "128", "--seed", "3"], cwd=work))  # fmt: skip
    for fmt in ("onnx", "openvino"):
        _ok(_run([edgedet, "export", "--model", "test", "--weights", test_weights, "--format", fmt,
                  "--out", "models", "--json"], cwd=work))  # fmt: skip
    _ok(_run([edgedet, "calibrate", "--model", "models/test.onnx", "--calib", "data/images", "--num", "6",
              "--backend", "onnxruntime,openvino", "--speed-iters", "0", "--out", "int8"], cwd=work))  # fmt: skip
    return work


def test_workflow_from_the_wheel(workflow, wheel_env):
    edgedet = wheel_env / "edgedet"
    for model in ("models/test.xml", "int8/test_int8_onnxruntime.onnx", "int8/test_int8_openvino.xml"):
        assert (workflow / model).is_file(), model
        r = _ok(_run([edgedet, "detect", "--model", model, "--source", "data/images", "--json"], cwd=workflow))
        assert len(json.loads(r.stdout)["results"]) == 6
    r = _ok(_run([edgedet, "eval", "--model", "models/test.onnx", "--data", "data/val.json", "--json"], cwd=workflow))
    stats = json.loads(r.stdout)
    assert stats["images"] == 6 and 0.0 <= stats["AP"] <= 1.0


@pytest.fixture(scope="module")
def runtime_env(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel and ONNX Runtime + OpenVINO, installed by pip with their dependencies."""
    root = tmp_path_factory.mktemp("runtime-venv")
    bin_dir = _venv(root / "venv", with_pip=True)
    _ok(_run([bin_dir / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
              f"{wheel}[onnxruntime,openvino]"], cwd=root, timeout=900))  # fmt: skip
    return bin_dir


def test_runtime_only_install_detects_and_benchmarks(runtime_env, workflow):
    py, edgedet = runtime_env / "python", runtime_env / "edgedet"
    assert _run([py, "-c", "import torch"], cwd=workflow).returncode != 0, "torch must not be installed here"
    r = _ok(_run([edgedet, "detect", "--model", "models/test.onnx", "--source", "data/images", "--json"], cwd=workflow))
    assert len(json.loads(r.stdout)["results"]) == 6
    r = _ok(_run([edgedet, "bench", "--artifact", "models/test.xml,int8/test_int8_openvino.xml", "--iters", "3",
                  "--warmup", "1", "--json"], cwd=workflow))  # fmt: skip
    rows = json.loads(r.stdout)["rows"]
    assert [row["precision"] for row in rows] == ["fp32", "int8"] and all(row["e2e_ms"]["p50"] > 0 for row in rows)


@pytest.mark.parametrize(
    "args",
    [["export", "--model", "test", "--out", "m"], ["detect", "--model", "test", "--source", "data/images"]],
    ids=["export", "detect-model-name"],
)
def test_runtime_only_install_names_the_extra_for_torch(runtime_env, workflow, args, tmp_path):
    # a fresh machine's empty artifact cache: the session's may already hold a `test` artifact, which runs without torch
    r = _run([runtime_env / "edgedet", *args], cwd=workflow, env={"EDGEDET_CACHE": str(tmp_path / "cache")})
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert r.returncode == 2 and len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "which is not installed: pip install 'edgedet[export]'" in errors[0]
