"""The shipped demo data, copied into a test's own data root."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

REPO_DATA = Path(__file__).resolve().parents[2] / "data"
MOCK_MODEL = "mock"


_TOURNAMENT_SECTION = re.compile(r"^tournament:\n(?:[ #].*\n|\n)*?(?=^\S)", re.MULTILINE)


def without_tournament(spec: str) -> str:
    """The spec text without its ``tournament`` section."""
    return _TOURNAMENT_SECTION.sub("", spec)


def copy_demo(root: Path, *, mock_model: bool = False, tournament: bool = False) -> Path:
    """Copy ``data/1_raw`` and the demo spec to ``root`` (nothing generated). With
    ``mock_model`` the spec uses a catalog model ``mock`` (provider openrouter, no rate limit)
    instead of the offline one, so ``DAYDREAMING_LLM_BASE_URL`` sends every call to a mock.

    The demo spec plays a 3-round tournament after its evaluations; most tests are about the
    draft -> essay -> evaluation pipeline and drop it (three more Dagster runs each) unless
    ``tournament`` keeps it (tests/cohorts/test_tournament_run.py runs the demo as shipped)."""
    shutil.copytree(REPO_DATA / "1_raw", root / "1_raw")
    if mock_model:
        with (root / "1_raw" / "llm_models.csv").open("a", encoding="utf-8") as catalog:
            catalog.write(f"{MOCK_MODEL},mock-model,openrouter,Mock model (tests),testing,1,2,\n")
    spec_dir = root / "cohorts" / "demo" / "spec"
    spec_dir.mkdir(parents=True)
    spec = (REPO_DATA / "cohorts" / "demo" / "spec" / "config.yaml").read_text(encoding="utf-8")
    if not tournament:
        spec = without_tournament(spec)
    if mock_model:
        spec = spec.replace("[offline]", f"[{MOCK_MODEL}]")
    (spec_dir / "config.yaml").write_text(spec, encoding="utf-8")
    return root
