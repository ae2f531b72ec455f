"""Pure code never imports Dagster (DESIGN §4, STYLE "pure code inside, a thin Dagster shell
outside"): checked at run time in a fresh interpreter and statically on the source files.

Optional modules are checked as soon as they exist, so the guard grows with the package.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

import daydreaming_dagster

PACKAGE = "daydreaming_dagster"
PACKAGE_DIR = Path(daydreaming_dagster.__file__).resolve().parent

# Must exist today and stay Dagster-free.
REQUIRED_MODULES = [
    "data_layer",
    "ids",
    "types",
    "errors",
    "catalog_types",
    "llm.base",
    "stages.settings",
]
# Checked once they land; a package is checked together with every submodule inside it.
OPTIONAL_MODULES = ["catalogs", "combos", "cohorts", "parsers", "llm", "stages", "results", "analysis", "reporting", "tournament",
                    "urls", "web",
                    "planning",
                    # The application layer loads Dagster only inside the functions that launch
                    # runs, so a re-run with nothing to do never pays for importing it.
                    "app"]

PURE_DIRS = ["data_layer", "cohorts", "parsers", "llm", "stages", "results", "analysis", "reporting", "web", "tournament"]
PURE_FILES = [
    "catalogs.py", "combos.py", "ids.py", "types.py", "errors.py", "catalog_types.py",
    "failures.py", "fingerprints.py", "planning.py", "urls.py",
]

# Runs in a fresh interpreter: imports a module (and, for a package, each submodule) and
# reports the first import after which any Dagster module was loaded.
_PROBE = """
import importlib, json, pkgutil, sys

def dagster_modules():
    return sorted(m for m in sys.modules if m == "dagster" or m.startswith(("dagster.", "dagster_")))

name = sys.argv[1]
imported, culprit = [], None
module = importlib.import_module(name)
imported.append(name)
if dagster_modules():
    culprit = name
elif hasattr(module, "__path__"):
    for info in pkgutil.walk_packages(module.__path__, name + "."):
        importlib.import_module(info.name)
        imported.append(info.name)
        if dagster_modules():
            culprit = info.name
            break
print(json.dumps({"imported": imported, "culprit": culprit, "dagster": dagster_modules()[:5]}))
"""


def _import_in_fresh_interpreter(module: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, module],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"importing {module} failed:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("short_name", REQUIRED_MODULES)
def test_required_pure_module_does_not_load_dagster(short_name: str) -> None:
    module = f"{PACKAGE}.{short_name}"
    assert importlib.util.find_spec(module) is not None, f"{module} is missing"
    report = _import_in_fresh_interpreter(module)
    assert report["culprit"] is None, (
        f"importing {report['culprit']} loaded Dagster ({report['dagster']}); "
        "pure modules must not import dagster"
    )


@pytest.mark.parametrize("short_name", OPTIONAL_MODULES)
def test_optional_pure_module_does_not_load_dagster(short_name: str) -> None:
    module = f"{PACKAGE}.{short_name}"
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} does not exist yet")
    report = _import_in_fresh_interpreter(module)
    assert report["imported"][0] == module
    assert report["culprit"] is None, (
        f"importing {report['culprit']} loaded Dagster ({report['dagster']}); "
        "pure modules must not import dagster"
    )


def test_all_required_modules_together_do_not_load_dagster() -> None:
    """One interpreter importing the whole pure core, as a stage worker would."""
    code = (
        "import importlib, sys\n"
        f"for name in {[f'{PACKAGE}.{m}' for m in REQUIRED_MODULES]!r}:\n"
        "    importlib.import_module(name)\n"
        "print('dagster' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "False"


def _pure_source_files() -> list[Path]:
    files = [PACKAGE_DIR / name for name in PURE_FILES if (PACKAGE_DIR / name).is_file()]
    for directory in PURE_DIRS:
        files.extend(sorted((PACKAGE_DIR / directory).rglob("*.py")))
    return files


def _dagster_imports(path: Path) -> list[str]:
    """Every ``import dagster…`` / ``from dagster… import`` in a file, top-level or nested."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            if name == "dagster" or name.startswith(("dagster.", "dagster_")):
                found.append(f"{path.relative_to(PACKAGE_DIR)}:{node.lineno}: {name}")
    return found


def test_pure_sources_never_import_dagster() -> None:
    files = _pure_source_files()
    checked = {str(p.relative_to(PACKAGE_DIR)) for p in files}
    # The scan must really cover the pure core, not silently find nothing.
    assert {
        "ids.py",
        "data_layer/gens_data_layer.py",
        "llm/base.py",
        "stages/settings.py",
    } <= checked
    offenders = [hit for path in files for hit in _dagster_imports(path)]
    assert offenders == [], "pure code imports dagster:\n" + "\n".join(offenders)


def test_static_scan_detects_dagster_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scanner itself finds every import form (so an empty offender list means something)."""
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE_DIR", tmp_path)
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\n"
        "import dagster\n"
        "import dagster_aws.s3 as s3\n"
        "from dagster import asset\n"
        "from dagster._core import x\n"
        "from .dagster_like import y\n"
        "import daydreaming_dagster\n"
        "def f():\n"
        "    from dagster_duckdb import DuckDBResource\n",
        encoding="utf-8",
    )
    assert [hit.split(": ")[1] for hit in _dagster_imports(sample)] == [
        "dagster",
        "dagster_aws.s3",
        "dagster",
        "dagster._core",
        "dagster_duckdb",
    ]


def test_runtime_probe_detects_dagster() -> None:
    """The probe names the module that loads Dagster (``partitions`` is Dagster code by design),
    so a passing check above means something."""
    report = _import_in_fresh_interpreter(f"{PACKAGE}.partitions")
    assert report["culprit"] == f"{PACKAGE}.partitions"
    assert "dagster" in report["dagster"]
