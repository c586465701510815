"""Dependencies point one way, from the proof core up to the application, with no cycles.

Every import of every module counts: module-level, inside functions and under
``TYPE_CHECKING``. A module named by a string (``importlib.import_module``,
``__import__``) is an import no tool sees, so it is refused outright.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

# folder -> the package it installs as (setup.py)
FOLDERS = {
    "provers": "veristream.provers",
    "connectors": "veristream.connectors",
    "contracts": "veristream.contracts",
    "pipeline": "veristream.pipeline",
    "veristream": "veristream",
}
# layer -> the layers it may import
ALLOWED = {
    "provers": set(),
    "connectors": {"provers"},
    "contracts": {"provers"},
    "pipeline": {"connectors", "provers"},
    "veristream": {"provers", "connectors", "contracts", "pipeline"},
}


def _modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            if "node_modules" in path.parts:
                continue
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    return modules


MODULES = _modules()


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FOLDERS and parts[1] != "veristream" else "veristream"


def _owner(name: str) -> str | None:
    """The project module that ``name`` (a module or a name inside one) belongs to."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imported(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """Every project module ``module`` imports, with the line, wherever the import stands."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for name in names:
            if name.split(".")[0] != "veristream":
                continue
            owner = _owner(name)
            if owner is not None and owner != module:
                yield owner, node.lineno


def _string_imports(path: Path) -> Iterator[tuple[str, int]]:
    """Imports of project modules spelled as strings."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        first = node.args[0]
        if (
            called in {"import_module", "__import__"}
            and isinstance(first, ast.Constant)
            and isinstance(first.value, str)
            and first.value.startswith("veristream")
        ):
            yield first.value, node.lineno


def _graph() -> dict[str, dict[str, int]]:
    return {module: dict(_imported(module, path)) for module, path in MODULES.items()}


def test_the_layout_is_what_the_rule_describes() -> None:
    assert {_layer(m) for m in MODULES} == set(ALLOWED)
    assert len(MODULES) > 40


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_no_import_points_against_the_layers(layer: str) -> None:
    against = [
        f"{MODULES[module].relative_to(REPO)}:{line} imports {target}"
        for module, targets in _graph().items()
        if _layer(module) == layer
        for target, line in targets.items()
        if _layer(target) != layer and _layer(target) not in ALLOWED[layer]
    ]
    assert against == []


def test_the_root_package_imports_nothing_of_the_project() -> None:
    assert _graph()["veristream"] == {}


def test_no_cycle_between_modules() -> None:
    graph = {module: set(targets) for module, targets in _graph().items()}
    done: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str], on_path: set[str]) -> None:
        for target in sorted(graph[module]):
            if target in on_path:
                cycles.append([*path[path.index(target) :], target])
            elif target not in done:
                visit(target, [*path, target], on_path | {target})
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module, [module], {module})
    assert cycles == []


def test_no_module_is_imported_by_name() -> None:
    hidden = [
        f"{path.relative_to(REPO)}:{line} imports {name} by name"
        for path in MODULES.values()
        for name, line in _string_imports(path)
    ]
    assert hidden == []


def test_the_checker_sees_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from veristream.pipeline.jobspec import JobSpec\n"
        "def f():\n"
        "    from veristream.contracts import chain\n"
        "    import importlib\n"
        "    importlib.import_module('veristream.run')\n"
    )
    seen = dict(_imported("veristream.provers.probe", source))
    assert set(seen) == {"veristream.pipeline.jobspec", "veristream.contracts", "veristream.contracts.chain"}
    assert [name for name, _ in _string_imports(source)] == ["veristream.run"]
