"""The tables' "module:attr" strings are imports that run only when their row is used: a rename would break one path
at run time and no test before. Each reference is resolved here by reading the target module's source (without
importing its heavy library), held to the import order (tests/test_imports.py), and every row's pip extra and
library are checked against setup.py."""

from __future__ import annotations

import ast
import dataclasses
import re

import pytest

from edgedet.converters.int8.strategies import STRATEGIES
from edgedet.registry import BACKENDS, FORMATS
from tests.setup_py import REPO, setup_py
from tests.test_imports import ALLOWED, layer

# Which layer loads each column's reference: that layer must be allowed to import the target.
LOADED_BY = {
    ("FormatSpec", "builder"): "converters",  # converters.pipeline.get_artifact / export_artifact
    ("FormatSpec", "from_onnx"): "top",  # edgedet build
    ("FormatSpec", "offline_command"): "converters",  # the Triton repository writer, edgedet build
    ("BackendSpec", "runner"): "runtimes",  # Detector.load
    ("BackendSpec", "static_check"): "top",  # edgedet check / build
    ("Strategy", "build"): "converters",  # converters.int8.pipeline
    ("Strategy", "accuracy_control"): "converters",
    ("Strategy", "validation"): "converters",
    ("FormatSpec", "embedding"): "core",  # edgedet.manifest reads and writes the copy inside the file
}


def _rows():
    for table in (FORMATS, BACKENDS, STRATEGIES):
        yield from table.values()


def references() -> list[tuple[str, str, str]]:
    """(row description, column, "module:attr") for every reference in every table."""
    out = []
    for row in _rows():
        for f in dataclasses.fields(row):
            value = getattr(row, f.name)
            if isinstance(value, str) and re.fullmatch(r"edgedet(\.\w+)+:\w+", value):
                out.append((f"{type(row).__name__}({row.name!r})", f.name, value))
    return out


def _source_file(module: str):
    _, setup = setup_py()
    for package, folder in sorted(setup["ROOTS"].items(), key=lambda kv: -len(kv[0])):
        if module == package or module.startswith(package + "."):
            rel = module[len(package) :].lstrip(".").split(".") if module != package else []
            base = REPO / folder / "/".join(rel)
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                if candidate.is_file():
                    return candidate
    return None


def _top_level_names(path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def test_the_tables_have_references():
    cols = {(where.split("(")[0], col) for where, col, _ in references()}
    assert cols <= set(LOADED_BY), f"a table column with references has no LOADED_BY entry: {cols - set(LOADED_BY)}"
    assert len(references()) >= 10


def problems(where: str, column: str, ref: str) -> list[str]:
    """What is wrong with one reference: a missing module or attribute, or an import against the order."""
    module, _, attr = ref.partition(":")
    path = _source_file(module)
    if path is None:
        return [f"{where}.{column} = {ref!r}: no module {module} in the source tree"]
    out = []
    if attr not in _top_level_names(path):
        out.append(f"{where}.{column} = {ref!r}: {path.name} defines no {attr}")
    loader = LOADED_BY[(where.split("(")[0], column)]
    if layer(module) not in ALLOWED[loader]:
        out.append(f"{where}.{column}: {loader} would import {module} ({layer(module)})")
    return out


@pytest.mark.parametrize("where, column, ref", references(), ids=lambda v: v if isinstance(v, str) else None)
def test_reference_resolves_and_follows_the_import_order(where, column, ref):
    assert problems(where, column, ref) == []


@pytest.mark.parametrize(
    "column, ref, expected",
    [
        ("builder", "edgedet.converters.builders:build_onnx_renamed", "defines no build_onnx_renamed"),
        ("builder", "edgedet.converters.no_such_module:build", "no module edgedet.converters.no_such_module"),
        ("builder", "edgedet.benchmarks.harness:run_bench", "converters would import edgedet.benchmarks.harness"),
    ],
)
def test_a_broken_reference_is_caught(column, ref, expected):
    found = problems("FormatSpec('x')", column, ref)
    assert found and expected in found[0]


def test_every_row_names_a_real_extra_that_installs_its_library():
    kwargs, _ = setup_py()
    extras = kwargs["extras_require"]
    for row in _rows():
        extra = getattr(row, "extra", None)
        if extra is None:  # INT8 strategies install through their backend's row
            continue
        assert extra in extras, f"{type(row).__name__}({row.name!r}) names extra {extra!r}, not in setup.py"
        dists = {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in extras[extra]}
        assert any(d == row.library or d.startswith(row.library + "-") for d in dists), (
            f"{type(row).__name__}({row.name!r}): extra {extra!r} ({sorted(dists)}) does not install {row.library}"
        )


def test_every_strategy_backend_is_a_backend():
    for s in STRATEGIES.values():
        assert s.backend in BACKENDS and (not s.evaluate_backend or s.evaluate_backend in BACKENDS)
