"""Pre-flight: every class of configuration error stops the run before the first paid call,
all problems at once, one line each naming the file (and line) and the fix; the mock server
(standing in for OpenRouter, real HTTP) sees no request and gens/ holds only seeded metadata."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daydreaming_dagster.cohorts import build_cohort
from daydreaming_dagster.llm.mock_server import MockConfig, MockLLMServer
from daydreaming_dagster.preflight import preflight
from daydreaming_dagster.stages.settings import StageSettings
from tests.support.cli import run_cli

FIXTURE = Path(__file__).parent / "fixtures" / "established_tool"
COHORT = "established-pilot"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A fresh copy of the established-tool fixture data root."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "data"))


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[MockLLMServer]:
    """OpenRouter's route, key set, pointed at the mock server: a run would really call it."""
    with MockLLMServer(MockConfig()) as mock:
        monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test")
        monkeypatch.setenv("DAYDREAMING_OPENROUTER_BASE_URL", mock.openrouter_base_url)
        yield mock


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def unknown_parser(root: Path) -> None:
    _edit(root / "1_raw" / "draft_templates.csv", "Links concepts and ends with an essay block,essay_block_lenient",
          "Links concepts and ends with an essay block,essay_blok")


def undefined_variable(root: Path) -> None:
    _edit(root / "1_raw" / "templates" / "draft" / "creative-synthesis-v10.txt", "tags.", "tags. {{ concept_summary }}")


def syntax_error(root: Path) -> None:
    path = root / "1_raw" / "templates" / "evaluation" / "novelty.v1.txt"
    path.write_text(path.read_text() + "{% if %}\n")


def missing_template_file(root: Path) -> None:
    (root / "1_raw" / "templates" / "essay" / "llm-review-v1.txt").unlink()


def model_without_route(root: Path) -> None:
    _edit(root / "1_raw" / "llm_models.csv", "qwen/qwen3-235b-a22b,qwen", "qwen3-235b,qwen")


HEADER = "error: pre-flight found 1 problem(s) in cohort established-pilot; nothing was called"
ERROR_CLASSES: list[tuple[Callable[[Path], None], list[str]]] = [
    (unknown_parser, [HEADER, "draft_templates.csv:2", "unknown draft parser 'essay_blok'", "fix: name a registered parser"]),
    (undefined_variable, [HEADER, "creative-synthesis-v10.txt:6", "undefined variable at line 6", "concept_summary",
                          "(member d_"]),
    (syntax_error, [HEADER, "novelty.v1.txt:6", "syntax error"]),
    # The cohort build already refuses a spec whose template has no file (before pre-flight).
    (missing_template_file, ["error: ", "llm-review-v1.txt", "missing template file"]),
    (model_without_route, [HEADER, "llm_models.csv:5", "provider 'qwen' has no route", "DAYDREAMING_LLM_BASE_URL"]),
]


def _nothing_generated(root: Path) -> bool:
    gens = root / "gens"
    written = {p.name for p in gens.rglob("*") if p.is_file()} if gens.exists() else set()
    return written <= {"metadata.json"}


@pytest.mark.parametrize(("breaks", "expected"), ERROR_CLASSES, ids=[f.__name__ for f, _ in ERROR_CLASSES])
def test_each_error_class_stops_the_run_before_any_call(
    root: Path, server: MockLLMServer, capsys: pytest.CaptureFixture[str],
    breaks: Callable[[Path], None], expected: list[str],
) -> None:
    breaks(root)
    code, _, err = run_cli(["run", COHORT, "--data-root", str(root)], capsys)
    assert code == 2
    for text in expected:
        assert text in err
    assert server.stats()["total"] == 0
    assert _nothing_generated(root)


def test_every_problem_is_reported_together_and_check_exits_2(
    root: Path, server: MockLLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    pre_flight_classes = [(b, e) for b, e in ERROR_CLASSES if HEADER in e]
    for breaks, _ in pre_flight_classes:
        breaks(root)
    code, out, err = run_cli(["run", COHORT, "--check", "--data-root", str(root)], capsys)
    assert code == 2 and "ok" not in out.splitlines()
    problems = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(problems) == len(pre_flight_classes) == 4
    assert server.stats()["total"] == 0 and _nothing_generated(root)


def test_settings_and_unknown_models_are_problems_too(root: Path, server: MockLLMServer) -> None:
    membership = build_cohort(root, COHORT).membership
    rows = list(membership.all_rows())
    settings = {"draft": StageSettings(max_tokens=0), "essay": StageSettings(temperature=3.5),
                "evaluation": StageSettings(max_tokens=4096, temperature=0.0)}
    report = preflight(root, rows, settings=settings)
    assert [p.kind for p in report.problems] == ["settings", "settings"]
    assert "max_tokens for draft is 0" in report.render() and "temperature for essay is 3.5" in report.render()

    # A generation whose metadata names a model the catalog lost (Dagster runs read metadata).
    (root / "1_raw" / "llm_models.csv").write_text(
        (root / "1_raw" / "llm_models.csv").read_text().replace("sonnet-4,", "sonnet-4-renamed,"))
    report = preflight(root, rows)
    assert [p.kind for p in report.problems] == ["model"]
    assert "model id 'sonnet-4' (used by evaluation v_" in report.problems[0].what
    assert server.stats()["total"] == 0


def test_offline_outputs_are_not_reused_once_the_key_is_set(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", COHORT, "--stage", "draft", "--no-report", "--data-root", str(root)]
    with MockLLMServer() as mock:
        monkeypatch.setenv("DAYDREAMING_OPENROUTER_BASE_URL", mock.openrouter_base_url)
        code, _, err = run_cli([*args, "--offline"], capsys)
        assert code == 0, err
        assert mock.stats()["total"] == 0
        drafts = sorted((root / "gens" / "draft").iterdir())
        meta = [json.loads((d / "raw_metadata.json").read_text()) for d in drafts]
        assert {(m["provider"], m["requested_provider"]) for m in meta} == {("offline", "openrouter")}

        # Same command with --offline again: the synthetic outputs stand (nothing to regenerate).
        code, _, err = run_cli([*args, "--offline"], capsys)
        assert code == 0 and "nothing to run: 8 reused" in err and mock.stats()["total"] == 0

        # The key appears: the real route serves these models now, so nothing synthetic is reused.
        monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test")
        code, _, err = run_cli(args, capsys)
        assert code == 0, err
        assert mock.stats()["total"] == len(drafts) == 8
        meta = [json.loads((d / "raw_metadata.json").read_text()) for d in drafts]
        assert {m["provider"] for m in meta} == {"openrouter"}
        assert {m["endpoint"] for m in meta} == {mock.openrouter_base_url}


def test_retry_failed_serves_keyless_models_offline_only_when_asked(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--stage", "draft", "--data-root", str(root)]
    with MockLLMServer(MockConfig(api_key="sk-or-right")) as mock:
        monkeypatch.setenv("DAYDREAMING_OPENROUTER_BASE_URL", mock.openrouter_base_url)
        monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-wrong")  # every call refused: 401
        code, _, err = run_cli(["run", COHORT, *common, "--no-report"], capsys)
        assert code == 1, err
        assert mock.stats()["total"] >= 8
    monkeypatch.delenv("OPENROUTER_API_KEY")

    # No key and no --offline: the retry fails the same way, writing nothing synthetic.
    code, _, err = run_cli(["retry-failed", COHORT, *common], capsys)
    assert code == 1 and "retried 8: 0 finished, 8 still failing" in err
    drafts = sorted((root / "gens" / "draft").iterdir())
    assert not any((d / "raw.txt").exists() for d in drafts)

    code, _, err = run_cli(["retry-failed", COHORT, *common, "--offline"], capsys)
    assert code == 0 and "retried 8: 8 finished, 0 still failing" in err
    meta = [json.loads((d / "raw_metadata.json").read_text()) for d in drafts]
    assert {(m["provider"], m["requested_provider"]) for m in meta} == {("offline", "openrouter")}
