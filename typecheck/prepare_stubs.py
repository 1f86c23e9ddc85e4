"""Make the installed typing information usable by mypy (run by typecheck/run.sh with typecheck/.venv's python).

1. tensorrt-stubs: a few signatures are not valid Python (parameters named `in`, a parameter without a default
   after defaulted ones); patch them in place, and mark tensorrt / tensorrt_bindings as typed (py.typed).
   Two runtime facts the stubs miss are added: Dims is iterable (tuple(shape) works), and a Dims argument
   also takes a tuple or list of ints (pybind11 converts it).
2. cuda-python ships no stubs: generate them for cuda.bindings.runtime with stubgen (names, enum members and
   classes; functions become Callable[..., Any]) into a stub-only package `cuda-stubs` in site-packages.
Idempotent: running it again changes nothing.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

SITE = Path(sysconfig.get_paths()["purelib"])


def _split_params(params: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in params:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return out + [cur]


def _default_after_defaults(line: str) -> str:
    """def f(a, b: T = x, c: U) -> R:  ->  def f(a, b: T = x, c: U = ...) -> R:"""
    start = end = line.index("(") + 1
    depth = 1
    while depth:
        depth += {"(": 1, ")": -1}.get(line[end], 0)
        end += 1
    fixed, seen_default = [], False
    for p in _split_params(line[start : end - 1]):
        if "=" in p:
            seen_default = True
        elif seen_default and p.strip() and not p.strip().startswith("*"):
            p += " = ..."
        fixed.append(p)
    return line[:start] + ",".join(fixed) + line[end - 1 :]


def _dims_runtime_facts(text: str) -> str:
    future = "from __future__ import annotations\n"
    imports = "from collections.abc import Iterator as _Iterator, Sequence as _Sequence\n"
    text = text.replace(future, future + imports, 1)
    text = text.replace("\nclass Dims:\n", "\nclass Dims:\n    def __iter__(self) -> _Iterator[int]: ...\n", 1)
    return re.sub(r"(\w: )Dims(?=[,)])", r"\1Dims | _Sequence[int]", text)


def patch_tensorrt_stubs() -> None:
    for pkg in ("tensorrt", "tensorrt_bindings"):
        if not (SITE / pkg / "__init__.pyi").is_file():
            sys.exit(f"tensorrt-stubs is not installed in {SITE}")
        (SITE / pkg / "py.typed").write_text("")
    for path in sorted((SITE / "tensorrt_bindings").glob("*.pyi")) + [SITE / "tensorrt" / "__init__.pyi"]:
        text = re.sub(r"([(,]\s*)in(\s*:)", r"\1in_\2", path.read_text())  # `in` is a keyword
        if path.name == "tensorrt.pyi" and "_Iterator" not in text:
            text = _dims_runtime_facts(text)
        lines = text.splitlines()
        for _ in range(100):
            try:
                ast.parse("\n".join(lines), str(path))
                break
            except SyntaxError as e:
                line = lines[e.lineno - 1]
                if "non-default argument" not in e.msg or "def " not in line:
                    sys.exit(f"{path}:{e.lineno}: cannot patch: {e.msg}: {line.strip()}")
                lines[e.lineno - 1] = _default_after_defaults(line)
        else:
            sys.exit(f"{path}: too many syntax errors")
        fixed = "\n".join(lines) + "\n"
        if fixed != path.read_text():
            path.write_text(fixed)
            print(f"patched {path.relative_to(SITE)}")


def generate_cuda_stubs() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [str(Path(sys.executable).parent / "stubgen"), "-q", "-m", "cuda.bindings.runtime", "-o", tmp], check=True
        )
        text = (Path(tmp) / "cuda" / "bindings" / "runtime.pyi").read_text()
    text = re.sub(r"^import (_cython_\w+|cuda\.bindings\.\w+(\.\w+)*)\n", "", text, flags=re.M)
    text = re.sub(r"_cython_\w+\.cython_function_or_method", "Callable[..., Any]", text)
    text = text.replace("cuda.bindings._internal._fast_enum.FastEnum", "int")  # enums are int-like
    text = re.sub(r"cuda\.bindings\.driver\.\w+", "Incomplete", text)
    text = "from collections.abc import Callable\nfrom typing import Any\nfrom _typeshed import Incomplete\n" + text
    ast.parse(text)
    out = SITE / "cuda-stubs"
    (out / "bindings").mkdir(parents=True, exist_ok=True)
    (out / "__init__.pyi").write_text("")
    (out / "bindings" / "__init__.pyi").write_text("")
    (out / "bindings" / "runtime.pyi").write_text(text)
    (out / "cudart.pyi").write_text("from cuda.bindings.runtime import *\n")  # the pre-12.6 module name


if __name__ == "__main__":
    patch_tensorrt_stubs()
    generate_cuda_stubs()
