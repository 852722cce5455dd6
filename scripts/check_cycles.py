"""Fail on any import cycle between egoindex's subpackages, and print each one with its import lines.

A cycle makes two packages one: neither can be read, tested or moved without the other. The graph is
grimp's (import-linter's own), so function-local and TYPE_CHECKING imports count: a dependency hidden in
a function is still a dependency. Nodes are the children of ``egoindex`` (``egoindex.store``,
``egoindex.errors``, ...) plus the package's own ``__init__`` (``egoindex``): a lazy import in
``egoindex/__init__.py`` closes a cycle just as well, e.g. store -> model -> egoindex -> store.

Run: ``.venv/bin/python scripts/check_cycles.py`` (exit 1 and the cycles on stderr when there are any).
"""

from __future__ import annotations

import sys
from collections import deque

import grimp

ROOT = "egoindex"


def node_of(module: str) -> str:
    """The subpackage (or top-level module) ``module`` belongs to; the root ``__init__`` is its own node."""
    parts = module.split(".")
    return ".".join(parts[:2])


def node_graph(graph: grimp.ImportGraph) -> dict[str, dict[str, list[tuple[str, str]]]]:
    """``{importer node: {imported node: [(importer module, imported module), ...]}}`` between different nodes."""
    edges: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for module in sorted(graph.modules):
        if not (module == ROOT or module.startswith(ROOT + ".")):
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if not (imported == ROOT or imported.startswith(ROOT + ".")):
                continue
            a, b = node_of(module), node_of(imported)
            if a != b:
                edges.setdefault(a, {}).setdefault(b, []).append((module, imported))
    return edges


def strongly_connected(nodes: set[str], edges: dict[str, dict[str, list]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one node (each one holds a cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, {})):
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

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return found


def shortest_cycle(start: str, component: set[str], edges: dict[str, dict[str, list]]) -> list[str]:
    """The shortest path start -> ... -> start inside ``component`` (breadth-first)."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(edges.get(v, {})):
            if w not in component:
                continue
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if w not in parent:
                parent[w] = v
                queue.append(w)
    raise AssertionError(f"{start} is in a strongly connected component but on no cycle")


def line_of(graph: grimp.ImportGraph, importer: str, imported: str) -> str:
    details = graph.get_import_details(importer=importer, imported=imported)
    return f"l.{details[0]['line_number']}" if details else "l.?"


def main() -> int:
    graph = grimp.build_graph(ROOT, include_external_packages=False)
    edges = node_graph(graph)
    nodes = set(edges) | {b for targets in edges.values() for b in targets}
    components = strongly_connected(nodes, edges)
    if not components:
        print(f"check_cycles: no import cycle between the {len(nodes)} subpackages of {ROOT}")
        return 0
    for component in components:
        print(f"import cycle among: {', '.join(component)}", file=sys.stderr)
        shown: set[tuple[str, ...]] = set()
        for start in component:  # the shortest cycle through each member, each shown once
            cycle = shortest_cycle(start, set(component), edges)
            key = tuple(sorted(cycle[:-1]))
            if key in shown:
                continue
            shown.add(key)
            print(f"  {' -> '.join(cycle)}", file=sys.stderr)
            for a, b in zip(cycle, cycle[1:]):
                for importer, imported in edges[a][b][:3]:
                    print(f"      {importer} -> {imported} ({line_of(graph, importer, imported)})", file=sys.stderr)
                if len(edges[a][b]) > 3:
                    print(f"      ... and {len(edges[a][b]) - 3} more {a} -> {b} imports", file=sys.stderr)
    print(f"check_cycles: {len(components)} group(s) of subpackages of {ROOT} import each other in a cycle",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
