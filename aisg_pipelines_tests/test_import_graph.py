"""Imports run one way: governance <- defs <- commands/cli, and no module imports itself back.

Static: every module of the package is parsed with `ast`, relative imports are resolved, and
imports inside functions count too (a lazy import still ties the two modules together, it only
hides the cycle until the function runs).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import aisg_pipelines

PACKAGE = "aisg_pipelines"
ROOT = Path(aisg_pipelines.__file__).resolve().parent

# (importer prefix, forbidden imported prefixes): the layers, lowest first.
FORBIDDEN = [
    (f"{PACKAGE}.governance", (f"{PACKAGE}.defs", f"{PACKAGE}.commands", f"{PACKAGE}.cli", f"{PACKAGE}.definitions", f"{PACKAGE}.demo")),
    (f"{PACKAGE}.defs", (f"{PACKAGE}.commands", f"{PACKAGE}.cli", f"{PACKAGE}.definitions", f"{PACKAGE}.demo")),
    (f"{PACKAGE}.commands", (f"{PACKAGE}.cli",)),
]


def _modules(root: Path = ROOT, package: str = PACKAGE) -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_package)
    return out


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, dict[str, int]]:
    """{module: {imported module of the package: line of the first such import}}."""
    modules = _modules(root, package)
    graph: dict[str, dict[str, int]] = {}
    for name, (path, is_package) in modules.items():
        here = name if is_package else name.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                # `from pkg import sub` imports the submodule; `from mod import name` the module
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
            for t in targets:
                while t and t not in modules:  # `import a.b.c` of a name inside a module
                    t = t.rpartition(".")[0]
                if t and t != name and t.startswith(package):
                    edges.setdefault(t, node.lineno)
        graph[name] = edges
    return graph


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan), as a path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_path(graph, set(c)) for c in components]


def _cycle_path(graph: dict[str, dict[str, int]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first), ending where it starts."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w not in component:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return path[::-1] + [start]
                if w not in parents:
                    parents[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(component)


def _describe(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:])) + f" -> {cycle[-1]}"


def layer_violations(graph: dict[str, dict[str, int]]) -> list[str]:
    out = []
    for importer, edges in sorted(graph.items()):
        for low_layer, forbidden in FORBIDDEN:
            if importer == low_layer or importer.startswith(low_layer + "."):
                for target, line in sorted(edges.items()):
                    if any(target == f or target.startswith(f + ".") for f in forbidden):
                        out.append(f"{importer} (line {line}) imports {target}")
    return out


@functools.lru_cache(maxsize=1)
def _package_graph() -> dict[str, dict[str, int]]:
    return import_graph()


def test_no_import_cycles():
    graph = _package_graph()
    assert len(graph) > 60  # the walk found the package
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(_describe(graph, c) for c in cycles)


def test_imports_run_one_way():
    violations = layer_violations(_package_graph())
    assert not violations, "imports against the layers (governance <- defs <- commands/cli):\n" + "\n".join(violations)


def test_the_walk_sees_cycles_and_upward_imports(tmp_path):
    """The checker itself: a lazy import inside a function and a relative import both close a cycle."""
    pkg = tmp_path / PACKAGE
    (pkg / "governance").mkdir(parents=True)
    (pkg / "defs").mkdir()
    for d in (pkg, pkg / "governance", pkg / "defs"):
        (d / "__init__.py").write_text("")
    (pkg / "governance" / "a.py").write_text("from . import b\n")
    (pkg / "governance" / "b.py").write_text("def f():\n    from .a import x\n")
    (pkg / "governance" / "c.py").write_text("from ..defs import assets\n")
    (pkg / "defs" / "assets.py").write_text("import aisg_pipelines.governance.c\n")
    graph = import_graph(pkg)
    cycles = find_cycles(graph)
    assert [_describe(graph, c) for c in cycles] == [
        f"{PACKAGE}.defs.assets (line 1) -> {PACKAGE}.governance.c (line 1) -> {PACKAGE}.defs.assets",
        f"{PACKAGE}.governance.a (line 1) -> {PACKAGE}.governance.b (line 2) -> {PACKAGE}.governance.a",
    ]
    assert layer_violations(graph) == [f"{PACKAGE}.governance.c (line 1) imports {PACKAGE}.defs.assets"]
