"""The project's import graph: layers point one way and no module imports itself back.

GIVEN every module of the project's packages, read as source (every import counts, module-level
or inside a function);
THEN the runtime never imports the local tooling, each layer imports only itself and the layers
below it (``models`` ← ``udfs`` ← ``flink_jobs`` ← ``localdev``; ``alerting`` alone), and
the graph between modules has no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
#: Package → the project packages it may import (itself included).
ALLOWED = {
    "models": {"models"},
    "udfs": {"udfs", "models"},
    "flink_jobs": {"flink_jobs", "udfs", "models"},
    "alerting": {"alerting"},
    "localdev": {"localdev", "flink_jobs", "udfs", "models", "alerting"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    module_name(path): path for package in ALLOWED for path in (ROOT / package).rglob("*.py")
}


def imported_modules(path: Path) -> set[str]:
    """Project modules that ``path`` imports (``from pkg import mod`` names ``pkg.mod``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in MODULES
                else node.module
                for alias in node.names
            ]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] in ALLOWED)
    return found


GRAPH = {name: imported_modules(path) for name, path in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, …, a]``, or ``None``.

    >>> find_cycle({"a": {"b"}, "b": {"a"}})
    ['a', 'b', 'a']
    >>> find_cycle({"a": {"b"}, "b": set()}) is None
    True
    """
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_is_read_from_every_package():
    assert {name.split(".")[0] for name in MODULES} == set(ALLOWED)
    assert GRAPH["flink_jobs.job"] >= {"flink_jobs.config", "udfs.scoring_operator"}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_its_own_layer_and_those_below(package):
    wrong = {
        (module, target)
        for module, targets in GRAPH.items()
        if module.split(".")[0] == package
        for target in targets
        if target.split(".")[0] not in ALLOWED[package]
    }
    assert not wrong, f"{package} imports up or across the layers: {sorted(wrong)}"


def test_there_is_no_import_cycle_between_modules():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH))


def test_the_managed_flink_entry_point_imports_only_the_job():
    imports = imported_modules(ROOT / "deploy" / "managed_flink" / "main.py")
    assert imports and {name.split(".")[0] for name in imports} == {"flink_jobs"}
