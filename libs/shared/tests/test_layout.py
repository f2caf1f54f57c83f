# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The floor plan, checked: every import of the product packages (function-
local ones too) is walked, and the graph must have no cycle, no service may
import another, and only a service's ``wsgi`` module may import its ``app``
(other processes import settings and domain modules)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = {
    "tecken_shared": ROOT / "libs/shared/tecken_shared",
    "tecken_symbols": ROOT / "services/symbols/tecken_symbols",
    "tecken_eliot": ROOT / "services/eliot/tecken_eliot",
    "tecken_collector": ROOT / "services/collector/tecken_collector",
}
SERVICES = {"tecken_symbols", "tecken_eliot", "tecken_collector"}


def _modules() -> dict[str, Path]:
    modules = {}
    for package, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            parts = [package, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The product module ``name`` names (a module, or the package of a name)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for name in names:
            target = _resolve(name)
            if target is not None and target != module:
                found.add(target)
    return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def test_the_walk_sees_the_packages() -> None:
    for package in PACKAGES:
        assert package in GRAPH
    assert "tecken_shared.storage.base" in GRAPH["tecken_shared.storage.factory"]


def test_no_import_cycles() -> None:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_service_imports_another() -> None:
    crossings = [
        (module, target)
        for module, targets in GRAPH.items()
        for target in targets
        if module.split(".")[0] in SERVICES
        and target.split(".")[0] in SERVICES
        and target.split(".")[0] != module.split(".")[0]
    ]
    assert crossings == []
    shared_up = [
        (module, target)
        for module, targets in GRAPH.items()
        if module.startswith("tecken_shared")
        for target in targets
        if target.split(".")[0] in SERVICES
    ]
    assert shared_up == []


def test_only_wsgi_imports_a_services_app() -> None:
    importers = sorted(
        (module, target)
        for module, targets in GRAPH.items()
        for target in targets
        if target.endswith(".app")
        and target.split(".")[0] in SERVICES
        and module != target.rpartition(".")[0] + ".wsgi"
    )
    assert importers == []


def test_a_services_tests_and_benches_do_not_import_another_service() -> None:
    """Tests drive another service as a user would: over HTTP, as its own process
    (``tecken_shared.testing.services``), never through its modules."""
    crossings = []
    for package in SERVICES:
        own = PACKAGES[package].parent
        for path in [*own.glob("tests/**/*.py"), *own.glob("bench/**/*.py")]:
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    names = [node.module or ""]
                else:
                    continue
                crossings += [
                    (str(path.relative_to(ROOT)), name)
                    for name in names
                    if name.split(".")[0] in SERVICES - {package}
                ]
    assert crossings == []
