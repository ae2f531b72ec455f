"""The CLI parses arguments and prints; it reaches the pipeline only through the application
layer (``daydreaming_dagster.app``), never into stages, assets, resources or the Dagster wiring."""

from __future__ import annotations

import ast
from pathlib import Path

import daydreaming_dagster.cli as cli_package

FORBIDDEN = ("assets", "stages", "resources", "definitions", "orchestration", "automation", "range_runs")
CLI_DIR = Path(cli_package.__file__).parent


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a CLI module, wherever it appears."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:  # relative to daydreaming_dagster.cli
                parts = ["daydreaming_dagster", "cli"][: 2 - (node.level - 1)]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            found.append((node.lineno, base))
            if node.module is None or base == "daydreaming_dagster":
                found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def test_cli_modules_import_no_stage_asset_or_resource_code() -> None:
    modules = sorted(CLI_DIR.glob("*.py"))
    assert len(modules) > 5
    offences = []
    for path in modules:
        for line, name in _imported_modules(path):
            parts = name.split(".")
            if parts[0] == "dagster" or (parts[0] == "daydreaming_dagster" and len(parts) > 1 and parts[1] in FORBIDDEN):
                offences.append(f"{path.name}:{line} imports {name}")
    assert not offences, "CLI modules must go through daydreaming_dagster.app:\n" + "\n".join(offences)


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from ..stages.batch import request_stop\n    from .. import assets\n")
    names = [name for _, name in _imported_modules(sample)]
    assert "daydreaming_dagster.stages.batch" in names and "daydreaming_dagster.assets" in names
