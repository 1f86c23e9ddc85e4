"""The wheel installs into a fresh venv and every module imports (converters/runtimes/benchmarks under edgedet.)."""

import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Modules whose backend library is optional and absent here import lazily; tensorrt ones must import too.
MODULE_DIRS = {
    **{
        ".".join(("edgedet",) + p.parent.relative_to(REPO / "edgedet").parts): p.parent
        for p in (REPO / "edgedet").rglob("__init__.py")
    },
    "edgedet.converters": REPO / "converters",
    "edgedet.runtimes": REPO / "runtimes",
    "edgedet.benchmarks": REPO / "benchmarks",
}


def _modules() -> list[str]:
    mods = []
    for pkg, folder in MODULE_DIRS.items():
        mods.append(pkg)
        mods += [f"{pkg}.{p.stem}" for p in sorted(folder.glob("*.py")) if p.stem not in ("__init__", "__main__")]
    return mods


def _needs_absent_library(mod: str) -> bool:
    import importlib.util

    libs = {"onnxruntime_runner": "onnxruntime", "openvino_runner": "openvino"}
    lib = libs.get(mod.rsplit(".", 1)[-1])
    return lib is not None and importlib.util.find_spec(lib) is None


def test_wheel_installs_and_imports(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)],
        check=True,
        cwd=tmp_path,
    )
    wheel = next(dist.glob("edgedet-*.whl"))
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "edgedet/runtimes/detector.py" in names and "edgedet/converters/onnx_export.py" in names
    assert not any(n.startswith(("runtimes/", "converters/", "benchmarks/", "tests/")) for n in names)
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env)
    py = env / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site, str(wheel)], check=True
    )
    # Dependencies come from this interpreter's site-packages, appended after the fresh venv's own (a plain
    # path entry: its .pth files, such as an editable edgedet, are not processed).
    import site as _site

    (Path(site) / "deps.pth").write_text("\n".join(_site.getsitepackages()) + "\n")
    mods = [m for m in _modules() if not _needs_absent_library(m)]
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}:\n    importlib.import_module(m)\n"
        "import edgedet; print(edgedet.__file__)"
    )
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().startswith(site)  # the installed copy, not the source tree
