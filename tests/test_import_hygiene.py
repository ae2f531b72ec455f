"""Importing the definitions (as `dagster dev -m daydreaming_dagster.definitions` does) prints
nothing, and the package has no import cycles between its top-level modules (checked on the
source: an import inside a function still counts as a dependency)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import daydreaming_dagster

PACKAGE = Path(daydreaming_dagster.__file__).parent


def test_importing_the_definitions_prints_no_warning() -> None:
    done = subprocess.run([sys.executable, "-W", "default", "-c", "import daydreaming_dagster.definitions"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == ""


def _unit(path: Path) -> str:
    """The top-level unit a source file belongs to: a module file, or a subpackage."""
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def _dependencies() -> dict[str, set[str]]:
    units = {_unit(p) for p in PACKAGE.rglob("*.py")} - {"__init__", "__main__"}
    graph: dict[str, set[str]] = {unit: set() for unit in units}
    for path in PACKAGE.rglob("*.py"):
        unit = _unit(path)
        if unit not in graph:
            continue
        depth = len(path.relative_to(PACKAGE).parts) - 1  # package levels below daydreaming_dagster
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    if (node.module or "").startswith("daydreaming_dagster."):
                        targets.append(node.module.split(".")[1])  # type: ignore[union-attr]
                elif node.level - 1 == depth:  # relative to the package root
                    targets += [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                targets += [a.name.split(".")[1] for a in node.names if a.name.startswith("daydreaming_dagster.")]
            graph[unit].update(t for t in targets if t in units and t != unit)
    return graph


def test_no_cycles_between_the_named_pairs() -> None:
    graph = _dependencies()
    assert "automation" in graph["definitions"] and "definitions" not in graph["automation"]
    assert "catalogs" in graph["combos"] and "combos" not in graph["catalogs"]


def test_the_dependency_scan_sees_function_level_imports() -> None:
    graph = _dependencies()
    assert "definitions" in graph["app"]  # imported inside app.run's helpers only


# Data flows one way (STYLE "data flows one way"): score tables → analysis → report, and the
# explorer reads all three; the URL helper the report needs lives below both.
FORBIDDEN_IMPORTS = {
    "results": {"analysis", "reporting", "web"},
    "analysis": {"reporting", "web"},
    "reporting": {"web"},
    "urls": {"results", "analysis", "reporting", "web"},
}


def test_tables_analysis_and_report_import_in_one_direction() -> None:
    graph = _dependencies()
    assert {"results", "analysis", "reporting", "web", "urls"} <= graph.keys()
    offenders = {unit: sorted(graph[unit] & forbidden) for unit, forbidden in FORBIDDEN_IMPORTS.items()
                 if graph[unit] & forbidden}
    assert offenders == {}, f"a lower layer imports a higher one: {offenders}"
    # The direction really holds (so an empty offender list means something).
    assert "results" in graph["analysis"] and {"results", "analysis", "urls"} <= graph["reporting"]


def test_the_dependency_scan_sees_every_import_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative, absolute, nested and ``from .. import name`` imports all count."""
    package = tmp_path / "pkg"
    for unit in ("results", "analysis", "reporting", "web"):
        (package / unit).mkdir(parents=True)
        (package / unit / "__init__.py").write_text("", encoding="utf-8")
    (package / "urls.py").write_text("", encoding="utf-8")
    (package / "results" / "a.py").write_text("from ..analysis import x\n", encoding="utf-8")
    (package / "results" / "b.py").write_text("def f():\n    from .. import reporting\n", encoding="utf-8")
    (package / "analysis" / "c.py").write_text("import daydreaming_dagster.web.app\n", encoding="utf-8")
    (package / "reporting" / "d.py").write_text("from daydreaming_dagster.urls import u\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    graph = _dependencies()
    assert graph["results"] == {"analysis", "reporting"}
    assert graph["analysis"] == {"web"} and graph["reporting"] == {"urls"}
