"""The code's shape: no import cycle between any two modules nor between packages, and what may import what."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "nnenergy"


def _imports(top_level_only: bool) -> dict[str, set[str]]:
    """module -> the nnenergy modules it imports (at module level, or anywhere, inside functions too).

    An import names the module it loads: `from nnenergy import zoo` the module `nnenergy.zoo`, `from
    nnenergy.predict import Prediction` the package `nnenergy.predict` (a name its `__init__` defines),
    `import nnenergy.predict.api` the module `nnenergy.predict.api`. The parent packages a submodule's
    import initialises first are not counted: every import needs them."""
    modules = {}
    for path in SRC.rglob("*.py"):
        mod = "nnenergy." + ".".join(path.relative_to(SRC).with_suffix("").parts)
        modules[mod.removesuffix(".__init__")] = path
    graph = {}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        deps = set()
        for node in tree.body if top_level_only else ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package `level - 1` above this module's own
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for name in names:
                while name and name not in modules:  # `import nnenergy.x.attr`: the module it names
                    name = name.rpartition(".")[0]
                deps.add(name)
        graph[mod] = deps - {mod, ""}
    return graph


# Cycles another change removes; each entry says which. (None may be added to make a test pass.)
KNOWN_CYCLES: set = set()  # none left: the generated-name scheme is arch/names.py since the split


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (each holds at least one cycle), with
    one cycle through each spelled out (Tarjan's algorithm)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while not component or v not in component:
                component.add(stack.pop())
            on_stack.difference_update(component)
            if len(component) > 1:
                found.append(component)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [_one_cycle(edges, c) for c in found if frozenset(c) not in KNOWN_CYCLES]


def _one_cycle(edges: dict[str, set[str]], component: set[str]) -> list[str]:
    """A cycle through the component's first module: the shortest way back to it, breadth first."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges.get(v, set()) & component):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    return sorted(component)


def test_no_import_cycle_between_modules():
    """Every import between any two modules (a package's `__init__` is a module too), at module level or
    inside a function (a lazy import is still a dependency): a DAG."""
    cycles = _cycles(_imports(top_level_only=False))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle_through_a_package_root():
    """`from nnenergy import Prediction` in a module the root imports closes a cycle through the root."""
    edges = {"nnenergy": {"nnenergy.predict"}, "nnenergy.predict": {"nnenergy.predict.api"},
             "nnenergy.predict.api": {"nnenergy.zoo"}, "nnenergy.zoo": {"nnenergy"}, "nnenergy.paths": set()}
    assert _cycles(edges) == [["nnenergy", "nnenergy.predict", "nnenergy.predict.api", "nnenergy.zoo", "nnenergy"]]


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


MAX_MODULE_LINES, MAX_FUNCTION_LINES = 500, 80  # issue 31: a module or a function one can read in one pass


def test_modules_and_functions_stay_readable_in_one_pass():
    """No module over 500 lines, no function over 80 (argument parsers, a flat list of options, aside)."""
    too_long = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(SRC)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and "parser" not in node.name
                    and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES):
                too_long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}: "
                                f"{node.end_lineno - node.lineno + 1} lines")
    assert not too_long, too_long
