"""The house's rule: imports run one way, from the settings up to the Dagster wiring, and only the
wiring imports Dagster. A module may import the package's modules of its own layer or below."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sbr_dagster"
LAYERS = [
    ("settings", "errors", "kernels"),
    ("lake",),
    ("data",),
    ("models",),
    ("evaluation",),
    ("training",),
    ("experiments", "serving", "reports", "testing"),
    ("defs", "definitions", "cli", "step_process"),
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
DAGSTER_ALLOWED = ("defs", "definitions")


def part_of(module: str) -> str:
    """The top-level part of ``sbr_dagster.<part>...``."""
    return module.split(".")[1]


def modules() -> list[tuple[str, list[str]]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(relative.parts).removesuffix(".__init__")
        imported = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found.append((name, imported))
    return found


@pytest.mark.parametrize(("module", "imported"), modules(), ids=lambda value: str(value)[:60])
def test_imports_run_one_way_and_only_the_wiring_imports_dagster(module, imported):
    if module == "sbr_dagster":
        return
    rank = RANK[part_of(module)]
    upward = sorted(
        {name for name in imported if name.startswith("sbr_dagster.") and RANK[part_of(name)] > rank}
    )
    assert not upward, f"{module} (layer {rank}) imports from above: {upward}"
    if part_of(module) not in DAGSTER_ALLOWED:
        assert not [n for n in imported if n == "dagster" or n.startswith("dagster.")], module


def test_every_part_of_the_package_has_a_layer():
    parts = {part_of(name) for name, _ in modules() if name != "sbr_dagster"}
    assert parts <= set(RANK), parts - set(RANK)
