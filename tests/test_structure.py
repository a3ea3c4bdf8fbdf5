"""The code's shape: no import cycle between the flow's packages, and what may import what."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "nnenergy"


def _imports(top_level_only: bool) -> dict[str, set[str]]:
    """module -> the nnenergy modules it imports (at module level, or anywhere)."""
    graph = {}
    for path in SRC.rglob("*.py"):
        mod = "nnenergy." + ".".join(path.relative_to(SRC).with_suffix("").parts)
        mod = mod.removesuffix(".__init__")
        tree = ast.parse(path.read_text())
        nodes = tree.body if top_level_only else list(ast.walk(tree))
        deps = set()
        for node in nodes:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nnenergy"):
                deps.add(node.module)
                deps |= {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("nnenergy")}
        graph[mod] = deps
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def _package(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else mod


def test_no_import_cycle_between_packages():
    """Every import, at module level or inside a function (a lazy import is still a dependency),
    folded to packages (measure, features, learn, ...): a DAG."""
    edges = {}
    for mod, deps in _imports(top_level_only=False).items():
        for d in deps:
            a, b = _package(mod), _package(d)
            if a != b and "nnenergy" not in (a, b):  # the root only re-exports the API
                edges.setdefault(a, set()).add(b)
    seen, stack = set(), []

    def visit(n):
        assert n not in stack, f"import cycle: {' -> '.join(stack[stack.index(n):] + [n])}"
        if n in seen:
            return
        stack.append(n)
        for m in edges.get(n, ()):
            visit(m)
        stack.pop()
        seen.add(n)

    for n in list(edges):
        visit(n)


def test_the_flow_only_points_downstream():
    anywhere = _imports(top_level_only=False)
    for mod, deps in anywhere.items():
        pkg = _package(mod)
        if pkg == "features":
            assert not {d for d in deps if _package(d) == "measure"}, f"{mod} imports measure/"
        if pkg in ("measure", "features", "learn", "evaluate", "describe", "schema"):
            assert not {d for d in deps if _package(d) == "apps"}, f"{mod} imports apps/"
    for mod in ("nnenergy.schema", "nnenergy.paths", "nnenergy.predict.errors"):
        assert not anywhere[mod], f"{mod} must import nothing of the project"


def test_the_library_never_imports_the_command_line():
    """Every argparse entry point lives in `cli/`; nothing outside it imports it."""
    for mod, deps in _imports(top_level_only=False).items():
        if _package(mod) != "cli":
            assert not {d for d in deps if _package(d) == "cli"}, f"{mod} imports cli/"


def test_prediction_builds_models_from_the_zoo_not_from_measure():
    """`predict/` builds keras.applications and built-in models through `nnenergy.zoo`, which `measure/`
    shares; of `measure/` it reads only this machine's hardware profile."""
    for mod, deps in _imports(top_level_only=False).items():
        if _package(mod) == "predict":
            assert {d for d in deps if _package(d) == "measure"} <= {"nnenergy.measure", "nnenergy.measure.hardware"}, \
                f"{mod} imports {sorted(d for d in deps if _package(d) == 'measure')}"
