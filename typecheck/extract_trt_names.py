"""Record the names each TensorRT version's Python API defines, for tests/converters/test_trt_names.py.

Run by hand when a TensorRT version is added or changed (needs CPython 3.11, network access to PyPI, a C
compiler and binutils); it rewrites typecheck/trt_names.json, which is committed:

    python3.11 typecheck/extract_trt_names.py

How: TensorRT's library wheels are download stubs, but the bindings wheels (tensorrt_bindings/tensorrt.so and
its __init__.py) are real. The .so needs only a dozen C entry points from libnvinfer & co. (createInferBuilder_
INTERNAL, getPluginRegistry, ...), and module initialisation calls none that matters: so a stub library that
defines them all (returning NULL), under the file names the .so asks for, lets the bindings package import in a
child process, with no GPU and no TensorRT. Its dir() is then exact: the module's names, and the members of the
classes in CLASSES and of every enum (nothing in TensorRT is ever called).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

OUT = Path(__file__).with_name("trt_names.json")
WHEELS = {  # version key -> (requirement, manylinux platform of its x86_64 wheels)
    "8.6": ("tensorrt-bindings==8.6.1", "manylinux_2_17_x86_64"),
    "10": ("tensorrt-cu12-bindings==10.13.3.9", "manylinux_2_28_x86_64"),
    "11": ("tensorrt-cu12-bindings==11.4.0.106", "manylinux_2_28_x86_64"),
}
# classes whose members are recorded (besides every enum): those the project's TensorRT code holds objects of
CLASSES = (
    "Builder",
    "IBuilderConfig",
    "INetworkDefinition",
    "ILayer",
    "ITensor",
    "OnnxParser",
    "IParserError",
    "IOptimizationProfile",
    "ITimingCache",
    "IHostMemory",
    "Runtime",
    "ICudaEngine",
    "IExecutionContext",
    "Logger",
    "ILogger",
    "Dims",
)


def _run(*cmd: str, **kw) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def _stub_libraries(so: Path, libdir: Path) -> None:
    """libdir/<each libnv*.so.N the .so needs>: one stub defining every plain C/C++ symbol the .so imports."""
    symbols = sorted(
        {
            line.split()[-1]
            for line in _run("nm", "-D", "--undefined-only", str(so)).splitlines()
            if line.split()[0] == "U" and "@" not in line and not line.split()[-1].startswith(("Py", "_Py", "dl"))
        }
    )
    src = libdir / "stub.c"
    src.write_text("".join(f"void *{s}(void) {{ return 0; }}\n" for s in symbols))
    _run(os.environ.get("CC", "cc"), "-shared", "-fPIC", "-o", str(libdir / "libstub.so"), str(src))
    for line in _run("readelf", "-d", str(so)).splitlines():
        if "(NEEDED)" in line and "[libnv" in line:
            (libdir / line.split("[")[1].rstrip("]")).write_bytes((libdir / "libstub.so").read_bytes())


def _dump(pkg_parent: str) -> None:
    """(child process) Print the names of the tensorrt_bindings package found in pkg_parent, as JSON."""
    import inspect

    sys.path.insert(0, pkg_parent)
    import tensorrt_bindings as trt

    names = {n for n in dir(trt) if not n.startswith("_") and not inspect.ismodule(getattr(trt, n))}
    names.add("__version__")
    for cls_name in sorted(names):
        cls = getattr(trt, cls_name)
        if inspect.isclass(cls) and (cls_name in CLASSES or hasattr(cls, "__members__")):
            names.update(f"{cls_name}.{m}" for m in dir(cls) if not m.startswith("_"))
    print(json.dumps({"version": trt.__version__, "names": sorted(names)}))


def extract(key: str, requirement: str, platform: str, tmp: Path) -> list[str]:
    work = tmp / key
    work.mkdir()
    py = f"{sys.version_info.major}{sys.version_info.minor}"
    _run(
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        py,
        "--platform",
        platform,
        "-d",
        str(work),
        requirement,
    )
    wheel = next(work.glob("*.whl"))
    zipfile.ZipFile(wheel).extractall(work / "pkg")
    _stub_libraries(work / "pkg" / "tensorrt_bindings" / "tensorrt.so", work)
    env = {**os.environ, "LD_LIBRARY_PATH": str(work)}
    out = json.loads(_run(sys.executable, __file__, "--dump", str(work / "pkg"), env=env, cwd=str(work)))
    print(f"{key}: {wheel.name}: TensorRT {out['version']}, {len(out['names'])} names")
    return out["names"]


def main() -> None:
    if sys.version_info[:2] != (3, 11):
        sys.exit("run with CPython 3.11: the bindings are extension modules for one Python version")
    data: dict[str, object] = {"_wheels": {k: req for k, (req, _) in WHEELS.items()}}
    with tempfile.TemporaryDirectory() as tmp:
        for key, (requirement, platform) in WHEELS.items():
            data[key] = extract(key, requirement, platform, Path(tmp))
    OUT.write_text(json.dumps(data, indent=0) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--dump"]:
        _dump(sys.argv[2])
    else:
        main()
