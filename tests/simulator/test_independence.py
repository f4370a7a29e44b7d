"""The simulator's truth shares no code with the models it judges.

Every module of ``adcraft.simulator`` is parsed (ast) and its imports are followed, transitively, through
adcraft (a package import counts its ``__init__``); none may reach the models' packages. The simulator
itself must not call the text-layout helpers the models use either (it has its own WCAG contrast).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import adcraft

PACKAGE_ROOT = Path(adcraft.__file__).resolve().parent
FORBIDDEN = ("adcraft.features", "adcraft.rewards", "adcraft.generate", "adcraft.evaluate")
NOT_FROM_SIMULATOR = ("adcraft.render.text_layout",)


def module_path(name: str) -> Path | None:
    """The source file of an adcraft module (a package's ``__init__.py``), or None if there is none."""
    relative = Path(*name.split(".")[1:])
    for candidate in (PACKAGE_ROOT / relative / "__init__.py", (PACKAGE_ROOT / relative).with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def imported_modules(name: str) -> frozenset[str]:
    """adcraft modules ``name`` imports (with the packages above each), read from its source."""
    path = module_path(name)
    is_package = path is not None and path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target == "adcraft" or target.startswith("adcraft."):
                parts = target.split(".")
                for end in range(2, len(parts) + 1):  # importing a.b.c runs a.b's __init__ too
                    prefix = ".".join(parts[:end])
                    if module_path(prefix) is not None:
                        found.add(prefix)
    return frozenset(found)


def reached_from(start: str) -> dict[str, str]:
    """Every adcraft module ``start`` reaches, each with the module that imports it first."""
    parent = {start: ""}
    queue = [start]
    while queue:
        current = queue.pop()
        for module in sorted(imported_modules(current)):
            if module not in parent:
                parent[module] = current
                queue.append(module)
    return parent


def chain(parent: dict[str, str], module: str) -> str:
    path = [module]
    while parent[path[-1]]:
        path.append(parent[path[-1]])
    return " <- ".join(path)


def simulator_modules() -> list[str]:
    folder = PACKAGE_ROOT / "simulator"
    names = []
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(PACKAGE_ROOT).with_suffix("").parts
        names.append(".".join(("adcraft",) + (parts[:-1] if parts[-1] == "__init__" else parts)))
    return names


def test_the_walk_sees_a_known_import_chain():
    """The walk itself works: it finds features from a module known to use it, through a relative import."""
    parent = reached_from("adcraft.rewards.ctr")
    assert any(m.startswith("adcraft.features") for m in parent)


def test_no_truth_module_reaches_the_models():
    modules = simulator_modules()
    assert {"adcraft.simulator.click_model", "adcraft.simulator.truth", "adcraft.simulator.build",
            "adcraft.simulator.legacy", "adcraft.simulator.measures"} <= set(modules)
    problems = []
    for start in modules:
        parent = reached_from(start)
        problems += [chain(parent, m) for m in parent if m.startswith(FORBIDDEN)]
        problems += [f"{m} <- {start}" for m in imported_modules(start) if m in NOT_FROM_SIMULATOR]
    assert not problems, "the simulator reaches the models' code:\n" + "\n".join(sorted(set(problems)))
