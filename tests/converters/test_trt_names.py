"""Every TensorRT name the project uses exists in each TensorRT version that can run it (8.6, 10, 11); offline.

typecheck/trt_names.json holds the names each version's Python API defines (module names, and Class.member for
the classes we hold objects of and every enum), read from the real bindings wheels by
typecheck/extract_trt_names.py. This test parses the TensorRT modules (MODULES) with ast and collects:
  * attribute chains on the tensorrt module (`trt` or `self.trt`): trt.X -> "X", and trt.X.Y -> "X.Y" where
    X is a class whose members are recorded (trt.__version__.split is just "__version__");
  * attributes used on TensorRT objects, whose class comes from the name holding the object (the module's
    receivers, e.g. self.context -> IExecutionContext) or from the method that returned it (RETURNS).
Each name must exist in every version that can run the line. The versions come from the enclosing `if`s:
comparisons of `major` with a number are evaluated for 8, 10 and 11 (their `else` gets the rest), and the
conditions in CONDITIONS map to the versions EngineOptions.resolve allows them on; any other condition restricts
nothing. A module-level function inherits the versions of the places that call it in the same module (so
_pin_postprocess_fp32, called under `if not strongly_typed`, is checked on 8.6 and 10 only).
"""

from __future__ import annotations

import ast
import json
import operator
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAMES = {
    k: set(v)
    for k, v in json.loads((ROOT / "typecheck" / "trt_names.json").read_text()).items()
    if not k.startswith("_")
}
VERSIONS = frozenset(NAMES)  # "8.6", "10", "11"
CLASSES = {n.split(".")[0] for names in NAMES.values() for n in names if "." in n}  # those with members recorded
MAJOR = {"8.6": 8, "10": 10, "11": 11}

# module -> receivers: the names that hold TensorRT objects there, and their classes
MODULES = {
    "converters/tensorrt_engine.py": {
        "builder": "Builder",
        "config": "IBuilderConfig",
        "network": "INetworkDefinition",
        "parser": "OnnxParser",
        "layer": "ILayer",
        "inp": "ITensor",
        "profile": "IOptimizationProfile",
        "merged": "ITimingCache",
    },
    "runtimes/tensorrt_runner.py": {
        "self.runtime": "Runtime",
        "self.engine": "ICudaEngine",
        "self.context": "IExecutionContext",
    },
    "edgedet/tensorrt_lib.py": {},
}
RETURNS = {"get_layer": "ILayer", "get_input": "ITensor", "get_output": "ITensor"}  # method -> class it returns
TRT_ROOTS = ("trt", "self.trt")
CONDITIONS = {  # `if` test -> the versions its branch runs on (see EngineOptions.resolve)
    # strongly typed: the default from 10, the only mode in 11. NB resolve() does not refuse strongly_typed=True
    # on 8.6 yet, where NetworkDefinitionCreationFlag.STRONGLY_TYPED does not exist.
    "strongly_typed": {"10", "11"},
    "not strongly_typed": {"8.6", "10"},  # weakly typed: 8.6, or 10 with strongly_typed=False; refused on 11
    "opts.dla_core is not None": {"8.6", "10", "11"},  # DLA: up to 10.7 and from 11.4.1 (Orin, JetPack 7.2.2+)
}
COMPARE = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


def branch_versions(test: ast.expr) -> tuple[frozenset, frozenset]:
    """(versions of the if-branch, versions of the else-branch) for an `if` test."""
    if (
        isinstance(test, ast.Compare)
        and ast.unparse(test.left) == "major"
        and len(test.ops) == 1
        and type(test.ops[0]) in COMPARE
        and isinstance(test.comparators[0], ast.Constant)
    ):
        op, n = COMPARE[type(test.ops[0])], test.comparators[0].value
        body = frozenset(v for v in VERSIONS if op(MAJOR[v], n))
        return body, VERSIONS - body
    return frozenset(CONDITIONS.get(ast.unparse(test), VERSIONS)), VERSIONS


class Uses(ast.NodeVisitor):
    """The TensorRT names one module uses: (name, line, versions), and the versions each local function runs on."""

    def __init__(self, receivers: dict[str, str], func_versions: dict[str, frozenset]):
        self.receivers, self.func_versions = receivers, func_versions
        self.stack = [VERSIONS]
        self.uses: list[tuple[str, int, frozenset]] = []
        self.calls: dict[str, set] = defaultdict(set)
        self.receivers_seen: set[str] = set()

    def _block(self, body: list[ast.stmt], versions: frozenset) -> None:
        self.stack.append(self.stack[-1] & versions)
        for stmt in body:
            self.visit(stmt)
        self.stack.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._block(node.body, self.func_versions.get(node.name, VERSIONS))

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        body, orelse = branch_versions(node.test)
        self._block(node.body, body)
        self._block(node.orelse, orelse)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name):
            self.calls[node.func.id] |= self.stack[-1]
        self.generic_visit(node)

    def _class_of(self, node: ast.expr) -> str | None:
        """The TensorRT class of the object an expression gives, where the module's names tell."""
        src = ast.unparse(node)
        if src in self.receivers:
            self.receivers_seen.add(src)
            return self.receivers[src]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in RETURNS:
            return RETURNS[node.func.attr] if self._class_of(node.func.value) else None
        return None

    def visit_Attribute(self, node: ast.Attribute) -> None:
        value, name = node.value, None
        if ast.unparse(value) in TRT_ROOTS:
            name = node.attr  # trt.X
        elif isinstance(value, ast.Attribute) and ast.unparse(value.value) in TRT_ROOTS:
            if value.attr in CLASSES:
                name = f"{value.attr}.{node.attr}"  # trt.X.Y
        elif cls := self._class_of(value):
            name = f"{cls}.{node.attr}"  # obj.method / obj.attribute
        if name:
            self.uses.append((name, node.lineno, self.stack[-1]))
        self.generic_visit(node)


def module_uses(path: str, source: str | None = None) -> Uses:
    tree = ast.parse(source or (ROOT / path).read_text(), path)
    func_versions: dict[str, frozenset] = {}
    for _ in range(5):  # a helper's versions come from its callers': iterate to a fixed point
        uses = Uses(MODULES[path], func_versions)
        uses.visit(tree)
        local = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        new = {name: frozenset(v) for name, v in uses.calls.items() if name in local}
        if new == func_versions:
            return uses
        func_versions = new
    raise AssertionError(f"{path}: call versions do not settle")


def missing_names(path: str, source: str | None = None) -> list[str]:
    return [
        f"{path}:{line}: {name} is not in TensorRT {v}"
        for name, line, versions in module_uses(path, source).uses
        for v in sorted(versions, key=MAJOR.get)
        if name not in NAMES[v]
    ]


@pytest.mark.parametrize("path", sorted(MODULES))
def test_tensorrt_names_exist_in_each_version(path):
    missing = missing_names(path)
    if missing:
        pytest.fail("\n".join(missing), pytrace=False)


def test_receivers_and_modules_are_current():
    """The tables above still describe the code: each receiver is used, and every module that imports
    TensorRT for its API is listed (a module only probing `import tensorrt` is not)."""
    for path, receivers in MODULES.items():
        assert module_uses(path).uses, f"{path} uses no TensorRT name: remove it from MODULES"
        unused = set(receivers) - module_uses(path).receivers_seen
        assert not unused, f"{path}: {sorted(unused)} no longer hold TensorRT objects: update MODULES"
    users = {
        str(p.relative_to(ROOT))
        for d in ("converters", "runtimes", "edgedet", "benchmarks")
        for p in (ROOT / d).rglob("*.py")
        if re.search(r"import_tensorrt\(\)|import tensorrt as \w+", p.read_text(encoding="utf-8"))
    }
    assert users <= set(MODULES), f"TensorRT modules not checked here: {sorted(users - set(MODULES))}"


def test_version_rules_are_read_from_the_code():
    """The check sees the branches: the names below are guarded in the code, and the guards are found."""
    uses = {name: versions for path in MODULES for name, _, versions in module_uses(path).uses}
    assert uses["NetworkDefinitionCreationFlag.EXPLICIT_BATCH"] == {"8.6"}  # major < 10
    assert uses["NetworkDefinitionCreationFlag.STRONGLY_TYPED"] == {"10", "11"}
    assert uses["BuilderFlag.FP16"] == uses["ILayer.precision"] == {"8.6", "10"}  # weakly typed only
    assert uses["IExecutionContext.execute_async_v3"] == VERSIONS
    assert "IExecutionContext.execute_async_v2" in NAMES["8.6"] - NAMES["10"] - NAMES["11"]


@pytest.mark.parametrize(
    "path, right, wrong, versions",
    [
        ("runtimes/tensorrt_runner.py", "execute_async_v3(", "execute_async_v2(", ["10", "11"]),
        ("converters/tensorrt_engine.py", "MemoryPoolType.WORKSPACE", "MemoryPoolType.WORKSPCE", ["8.6", "10", "11"]),
        ("converters/tensorrt_engine.py", "BuilderFlag.FP16", "BuilderFlag.FP61", ["8.6", "10"]),  # weakly typed only
    ],
)
def test_a_wrong_name_is_caught(path, right, wrong, versions):
    source = (ROOT / path).read_text().replace(right, wrong, 1)
    name = re.sub(r"\($", "", wrong.split(".")[-1])
    found = sorted({m.split()[-1] for m in missing_names(path, source) if f".{name} is not" in m}, key=MAJOR.get)
    assert found == versions
