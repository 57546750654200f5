"""The coordinator's layers (README, "Development"): a layer imports only from the layers before it, so the
domain stays pure and the state file never reaches into the running coordinator."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

COORDINATOR = Path(__file__).resolve().parent.parent / "coordinator"
LAYERS = ("domain", "persistence", "runtime", "cli")  # each may import the ones before it, and itself


def imported_layers(module: Path) -> set[str]:
    layers = set()
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        for name in names:
            parts = name.split(".")
            if parts[0] == "coordinator" and len(parts) > 1 and parts[1] in LAYERS:
                layers.add(parts[1])
    return layers


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_only_from_the_layers_before_it(layer):
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    modules = sorted((COORDINATOR / layer).glob("*.py"))
    assert modules, f"no modules in coordinator/{layer}"
    wrong = {module.name: sorted(imported_layers(module) - allowed) for module in modules}
    assert {name: layers for name, layers in wrong.items() if layers} == {}


def test_every_coordinator_module_is_in_a_layer():
    loose = sorted(path.name for path in COORDINATOR.glob("*.py") if path.name not in ("__init__.py", "__main__.py"))
    assert loose == []
