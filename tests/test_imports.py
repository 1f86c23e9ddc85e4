"""Imports flow one way (docs/architecture.md): the test reads every module's imports, top-level and inside functions,
and fails on an arrow against the order.

    core (edgedet/ minus cli/, integrations/, api.py, __init__, __main__)  imports none of the others
    runtimes/                                                              imports the core only
    converters/                                                            imports the core; runtimes only in the
                                                                           INT8 gate (converters/int8/gate.py)
    benchmarks/, edgedet/cli/, edgedet/integrations/, the facade            may import everything
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {
    "edgedet": REPO / "edgedet",
    "edgedet.converters": REPO / "converters",
    "edgedet.runtimes": REPO / "runtimes",
    "edgedet.benchmarks": REPO / "benchmarks",
}
TOP = ("edgedet.cli", "edgedet.integrations", "edgedet.benchmarks")
FACADE = ("edgedet.api", "edgedet", "edgedet.__main__")
ALLOWED = {
    "core": {"core"},
    "runtimes": {"core", "runtimes"},
    "converters": {"core", "converters"},
    "top": {"core", "runtimes", "converters", "top"},
}
EXCEPTIONS = {("edgedet.converters.int8.gate", "runtimes")}  # the accuracy gate evaluates through the Detector


def _modules():
    for pkg, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([pkg, *parts])
            if pkg == "edgedet" and parts and parts[0] in ("converters", "runtimes", "benchmarks"):
                continue
            yield name, path, path.name == "__init__.py"


def layer(module: str) -> str:
    if module in FACADE or module.startswith(TOP):
        return "top"
    for name in ("converters", "runtimes"):
        if module == f"edgedet.{name}" or module.startswith(f"edgedet.{name}."):
            return name
    return "core"


def imported(name: str, path: Path, is_pkg: bool):
    tree = ast.parse(path.read_text(), str(path))
    package = name if is_pkg else name.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target
            if not node.module or node.level:  # `from . import gate`: the names may be modules
                for alias in node.names:
                    yield node.lineno, f"{target}.{alias.name}"


def violations():
    out = []
    for name, path, is_pkg in _modules():
        src_layer = layer(name)
        for line, target in imported(name, path, is_pkg):
            if target != "edgedet" and not target.startswith("edgedet."):
                continue
            dst_layer = layer(target)
            if target in FACADE and src_layer != "top":
                dst_layer = "top"
            if dst_layer not in ALLOWED[src_layer] and (name, dst_layer) not in EXCEPTIONS:
                where = path.relative_to(REPO) if path.is_relative_to(REPO) else path
                out.append(f"{where}:{line}: {name} ({src_layer}) imports {target} ({dst_layer})")
    return out


def test_imports_flow_one_way():
    assert violations() == []


def test_the_checker_sees_a_planted_arrow(tmp_path, monkeypatch):
    """A core module importing a runtime, a runtime importing a converter, inside a function: both caught."""
    core = tmp_path / "edgedet"
    (core / "runtimes").mkdir(parents=True)
    (core / "bad_core.py").write_text("def f():\n    from edgedet.runtimes import Detector\n")
    (core / "runtimes" / "bad_runner.py").write_text("from ..converters.pipeline import get_artifact\n")
    monkeypatch.setitem(FOLDERS, "edgedet", core)
    monkeypatch.setitem(FOLDERS, "edgedet.runtimes", core / "runtimes")
    found = "\n".join(violations())
    assert "edgedet.bad_core (core) imports edgedet.runtimes" in found
    assert "bad_runner (runtimes) imports edgedet.converters.pipeline" in found


@pytest.mark.parametrize(
    "module, expected",
    [
        ("edgedet.manifest", "core"),
        ("edgedet.cli.detect", "top"),
        ("edgedet.runtimes.detector", "runtimes"),
        ("edgedet.api", "top"),
        ("edgedet.converters.int8.gate", "converters"),
    ],
)
def test_layers(module, expected):
    assert layer(module) == expected
