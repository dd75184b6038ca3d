"""The layers of docs/architecture.md, as a test: every module imports (no import cycle breaks it
at run time), no module imports a higher layer or a private name of another module, and the
internal import graph has no cycle at all (not even one that lazy imports would hide)."""

from __future__ import annotations

import ast
import importlib
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src"
PACKAGE = "pipeline_secrets"

# Lower layers first; a module may import its own layer's package and any layer below, never above.
LAYERS = [
    ("errors", "metrics", "_version"),  # foundations every layer uses
    ("pure",),  # the ((var)) grammar, documents, templates, scope ownership: no I/O, no AWS
    ("config",),  # settings parsed once, from the option table
    ("aws",),  # the one place that talks to AWS
    ("resilience",),  # wrappers with the backend's interface
    ("manager",),  # assembly and the lookup rules: the library API
    ("tools",),  # operator tools
    ("dev",),  # the embedded emulator behind --dev
    ("web",),  # the web node
    ("cli",),  # the command line
    ("__init__", "__main__"),  # the public API and `python -m`
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def modules() -> dict[str, pathlib.Path]:
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def imports_of(module: str, path: pathlib.Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names, line) for every internal import, lazy ones included."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == PACKAGE:
                found.append((target, [alias.name for alias in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    found.append((alias.name, [], node.lineno))
    return found


def resolve(target: str, names: list[str], known: dict[str, pathlib.Path]) -> list[str]:
    """The modules an import really loads: ``from pkg import module`` names a module."""
    loaded = [target] if target in known else []
    loaded += [f"{target}.{name}" for name in names if f"{target}.{name}" in known]
    return loaded or [target]


MODULES = modules()


@pytest.mark.parametrize("module", sorted(set(MODULES) - {f"{PACKAGE}.__main__"}))  # that one runs the CLI
def test_every_module_imports(module):
    importlib.import_module(module)


def test_no_module_imports_a_higher_layer():
    wrong = []
    for module, path in MODULES.items():
        mine = layer_of(module)
        for target, names, line in imports_of(module, path):
            for loaded in resolve(target, names, MODULES):
                theirs = layer_of(loaded)
                if RANK[theirs] > RANK[mine] or (RANK[theirs] == RANK[mine] and theirs != mine):
                    wrong.append(f"{path.relative_to(SRC)}:{line}: {mine} imports {loaded} ({theirs})")
    assert wrong == []


def test_every_package_has_a_layer():
    assert {layer_of(module) for module in MODULES} <= set(RANK)


def test_no_private_name_crosses_modules():
    wrong = []
    for module, path in MODULES.items():
        for target, names, line in imports_of(module, path):
            for name in names:
                if name.startswith("_") and not name.startswith("__") and target != module:
                    wrong.append(f"{path.relative_to(SRC)}:{line}: imports {target}.{name}")
    assert wrong == []


def test_the_import_graph_has_no_cycle():
    graph = {module: set() for module in MODULES}
    for module, path in MODULES.items():
        for target, names, _ in imports_of(module, path):
            for loaded in resolve(target, names, MODULES):
                if loaded in graph and loaded != module and not module.startswith(loaded + "."):
                    graph[module].add(loaded)
    # A package's __init__ that re-exports its modules is not a cycle with them: modules inside a
    # package import their siblings, not the package, in this tree.
    cycle = _find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None
