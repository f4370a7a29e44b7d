"""The package's layer order holds for every import, and no files or subpackages import each other.

Imports are read from the source (``ast``), all of them: module level, inside functions and under
``TYPE_CHECKING``, because a cycle that only type hints close still ties two files together.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import adcraft

PACKAGE = Path(adcraft.__file__).parent

# Lowest first, as in the README's layout section. A module may import its own layer and the ones below.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("<root>", "errors", "atomic", "configuration"),
    ("learning",),
    ("market",),
    ("features",),
    ("render",),
    ("simulator",),
    ("rewards",),
    ("evaluate",),
    ("generate",),
    ("pipeline",),
    ("batch",),
    ("serve",),
    ("cli",),
)
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (``adcraft.rewards.mil``; a package by its own name)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("adcraft", *path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports (``from a import b`` counts ``a.b`` when it is a module)."""
    modules = module_files()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def layer(module: str) -> str:
    """The layer a module belongs to: its subpackage, or the top-level module's own name."""
    parts = module.split(".")
    return "<root>" if len(parts) == 1 else parts[1]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_reader_sees_imports_of_every_kind():
    """The checks below are only as good as the graph: it holds a module-level, a function-level, a
    relative and a ``from package import module`` import that the package is known to make."""
    graph = import_graph()
    assert "adcraft.learning.training" in graph["adcraft.rewards.mil"]  # module level
    assert "adcraft.batch.ray_backend" in graph["adcraft.batch.backend"]  # inside a function
    assert "adcraft.learning.artifacts" in graph["adcraft.rewards.ctr"]
    assert len(graph) > 50


def test_every_subpackage_has_a_layer():
    assert {layer(module) for module in module_files()} <= set(RANK)


def test_no_module_imports_a_higher_layer():
    upward = sorted(
        f"{source} -> {target}"
        for source, targets in import_graph().items()
        for target in targets
        if RANK[layer(target)] > RANK[layer(source)]
    )
    assert upward == []


def test_no_two_files_import_each_other():
    assert cycles(import_graph()) == []


def test_no_two_subpackages_import_each_other():
    layers: dict[str, set[str]] = defaultdict(set)
    for source, targets in import_graph().items():
        layers[layer(source)].update(layer(t) for t in targets if layer(t) != layer(source))
    assert cycles(layers) == []


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
