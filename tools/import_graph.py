"""The import graph of ``course_lib``: every module, the course modules it imports, and cycles.

    python tools/import_graph.py     # prints the modules layer by layer; exit status 1 on a cycle

Every ``import`` statement counts, also one inside a function (a cycle through a lazy import
is still a cycle of the design). A package is its ``__init__``; ``from . import x`` names
the module ``x``. ``tests/test_imports.py`` runs the same walk.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "course_lib"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """``{module: course modules it imports}`` over every file of ``course_lib``."""
    files = sorted((ROOT / PACKAGE).rglob("*.py"))
    modules = {_module_name(f): f for f in files}
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(name, is_package, node) if node.level else node.module
                targets = [source] + [f"{source}.{a.name}" for a in node.names]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layers(graph: dict[str, set[str]]) -> list[list[str]]:
    """Modules by depth: layer 0 imports no course module, layer k only lower layers."""
    depth: dict[str, int] = {}

    def of(v, seen=()):
        if v not in depth:
            below = [of(w, (*seen, v)) for w in graph[v] if w not in seen]
            depth[v] = 1 + max(below, default=-1)
        return depth[v]

    for v in graph:
        of(v)
    return [
        sorted(v for v in graph if depth[v] == k)
        for k in range(max(depth.values()) + 1)
    ]


def main() -> int:
    graph = import_graph()
    for k, names in enumerate(layers(graph)):
        print(f"layer {k}: " + ", ".join(n.removeprefix(PACKAGE + ".") for n in names))
    arrows = sum(len(v) for v in graph.values())
    found = cycles(graph)
    print(f"{len(graph)} modules, {arrows} import arrows, {len(found)} cycles")
    for component in found:
        print("cycle:", " <-> ".join(component))
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
