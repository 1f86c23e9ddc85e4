"""What setup.py declares (packages, roots, extras, package data), read by running it with setuptools.setup
replaced: the tests check the wheel and the tables against the file that builds the wheel, not a copy of it."""

from __future__ import annotations

import runpy
from functools import lru_cache
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=1)
def setup_py() -> tuple[dict, dict]:
    """(the keyword arguments setup() received, setup.py's module globals)."""
    captured: dict = {}
    with mock.patch("setuptools.setup", lambda **kw: captured.update(kw)):
        module = runpy.run_path(str(REPO / "setup.py"), run_name="setup_py_under_test")
    return captured, module


def source_modules() -> dict[str, Path]:
    """Every module of the package's source tree (dotted name -> file), below each root of setup.py's ROOTS, minus
    the folders setup.py declares UNPACKAGED."""
    _, module = setup_py()
    skip = [REPO / u for u in module["UNPACKAGED"]]
    out = {}
    for name, folder in module["ROOTS"].items():
        for path in sorted((REPO / folder).rglob("*.py")):
            if any(path.is_relative_to(s) for s in skip):
                continue
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((name, *parts))] = path
    return out


def wheel_path(module: str, path: Path) -> str:
    """Where a source module lies inside the wheel: its dotted name as a path (packages as __init__.py)."""
    rel = module.replace(".", "/")
    return f"{rel}/__init__.py" if path.name == "__init__.py" else f"{rel}.py"
