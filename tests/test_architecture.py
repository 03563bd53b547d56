"""The house's rules, checked on the source: no import cycles (lazy imports count), and the
reference ops import nothing of the package above them."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "deltanet"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    return mods


def _resolve(name: str, mods: dict[str, Path]) -> str:
    while name and name not in mods:
        name = name.rsplit(".", 1)[0] if "." in name else ""
    return name


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at the top, in functions or for typing."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                is_pkg = path.name == "__init__.py"
                base = mod if is_pkg and node.level == 1 else mod.rsplit(".", node.level)[0]
                prefix = f"{base}.{node.module}" if node.module else base
                targets = [f"{prefix}.{a.name}" for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("deltanet"):
                targets = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("deltanet")]
            else:
                continue
            for target in targets:
                found = _resolve(target, mods)
                if found and found not in (mod, "deltanet"):
                    graph[mod].add(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while (w := stack.pop()) != v:
                comp.append(w)
            if comp:
                found.append(sorted([*comp, v]))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle_hidden_behind_a_lazy_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_reference_ops_import_only_other_reference_ops():
    graph = import_graph()
    for mod, targets in graph.items():
        if mod.startswith("deltanet.ops"):
            outside = sorted(t for t in targets if not t.startswith("deltanet.ops"))
            assert outside == [], f"{mod} imports {outside}"
