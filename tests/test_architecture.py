"""The layering the code relies on, checked from the source (``ast``), not from runtime imports.

* the import graph of ``gateway/`` and ``protocol/`` has no cycle, counting the imports
  under ``if TYPE_CHECKING:`` and inside functions (a cycle hidden there is still a cycle
  in the design);
* ``protocol/`` imports nothing from ``gateway/`` and no event loop (sans-I/O);
* only the composition root's neighbours import the Gateway.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "protocol")


def _modules() -> dict[str, Path]:
    """Python modules and the hand-written C extensions (``protocol/speedups.c``)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in [*(ROOT / package).rglob("*.py"), *(ROOT / package).rglob("*.c")]:
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports (absolute names, whatever the import's form)."""
    if path.suffix == ".c":
        # C code: it must not import at run time, or the graph would miss the edge.
        assert "PyImport_" not in path.read_text(), f"{path} imports modules: add the edges"
        return set()
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                names.add(candidate if candidate in MODULES else module)
    return names


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        deps: set[str] = set()
        for imported in _imports(name, path):
            # ``gateway.connection.Connection`` -> the module ``gateway.connection``
            while imported and imported not in MODULES:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                deps.add(imported)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph[node]):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
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


def test_the_checker_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_checker_resolves_relative_and_type_checking_imports() -> None:
    graph = _graph()
    # protocol/pusher/hub.py: "from .state import ..." (relative)
    assert "protocol.pusher.state" in graph["protocol.pusher.hub"]
    # gateway/connection/base.py imports gateway.context under TYPE_CHECKING only
    assert "gateway.context" in graph["gateway.connection.base"]


def test_no_import_cycle_in_gateway_and_protocol() -> None:
    assert _cycles(_graph()) == []


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("protocol")))
def test_protocol_is_sans_io(name: str) -> None:
    imported = _imports(name, MODULES[name])
    for module in imported:
        top = module.partition(".")[0]
        assert top not in ("gateway", "asyncio", "uvloop", "socket", "ssl", "selectors"), (
            f"{name} imports {module}"
        )


def test_only_the_entry_points_import_the_gateway() -> None:
    importers = {name for name, deps in _graph().items() if "gateway.server" in deps}
    assert importers <= {"gateway", "gateway.cli", "gateway.workers"}, importers
