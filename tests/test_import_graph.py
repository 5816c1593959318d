"""The package's import graph has no cycles (data flows one way: prompts -> masks -> targets -> fit -> evaluation).

Every ``import`` statement counts, at module level or inside a function; only imports under ``if TYPE_CHECKING:``
(never executed) are left out. Run ``python tests/test_import_graph.py`` to print the graph's edges and any cycle.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Dict, List, Set

PACKAGE = "spin_nerfstudio"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.AST) -> Set[int]:
    """Ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    skipped: Set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for body_node in node.body:
                skipped.update(id(n) for n in ast.walk(body_node))
    return skipped


def import_graph() -> Dict[str, Set[str]]:
    """Module -> the package modules it imports (a ``from pkg import mod`` counts as importing ``pkg.mod``)."""
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: Dict[str, Set[str]] = {name: set() for name in files}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        skipped = _type_checking_nodes(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            targets: List[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            for target in targets:
                while target and target not in files:  # `from a.b import func` -> a.b
                    target = target.rpartition(".")[0]
                if target and target != name and target.startswith(PACKAGE + "."):
                    graph[name].add(target)
    return graph


def find_cycle(graph: Dict[str, Set[str]]) -> List[str]:
    """One import cycle as a list of modules (first == last), or [] when the graph is acyclic."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(node: str) -> List[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return []


def test_package_imports_have_no_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 40 and sum(len(v) for v in graph.values()) > 60  # the graph was really built
    cycle = find_cycle(graph)
    assert cycle == [], "import cycle: " + " -> ".join(cycle)


def test_cycle_finder_finds_a_planted_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


if __name__ == "__main__":
    g = import_graph()
    print(f"{len(g)} modules, {sum(len(v) for v in g.values())} import edges inside {PACKAGE}")
    remaining = {k: set(v) for k, v in g.items()}
    cycles = 0
    while True:
        c = find_cycle(remaining)
        if not c:
            break
        cycles += 1
        print("cycle:", " -> ".join(c))
        remaining[c[0]].discard(c[1])  # break it and look for the next one
    print("no import cycles" if cycles == 0 else f"{cycles} cycle(s) found")
    sys.exit(1 if cycles else 0)
