"""A data root in the established DayDreaming tool's catalog format (tests/fixtures/
established_tool) loads and runs unchanged: dotted ids, maker-named providers routed to
OpenRouter by their model slug, that tool's parsers and columns. The run goes through the real
OpenRouter route (key + base URL pointed at the local mock server, real HTTP)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from daydreaming_dagster.catalogs import load_catalogs
from daydreaming_dagster.cohorts import read_membership
from daydreaming_dagster.data_layer import GensDataLayer
from daydreaming_dagster.llm.mock_server import MockConfig, MockLLMServer
from tests.support.cli import run_cli

FIXTURE = Path(__file__).parent / "fixtures" / "established_tool"
COHORT = "established-pilot"


@pytest.fixture
def established_root(tmp_path: Path) -> Path:
    """A fresh copy of the fixture data root (the test writes gens/ and cohort files into it)."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "data"))


@pytest.fixture
def openrouter_mock(monkeypatch: pytest.MonkeyPatch) -> Iterator[MockLLMServer]:
    """The mock server standing in for OpenRouter: a key is set and OpenRouter's base URL points
    at the mock (requests must carry the key)."""
    with MockLLMServer(MockConfig(api_key="sk-or-test")) as server:
        monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test")
        monkeypatch.setenv("DAYDREAMING_OPENROUTER_BASE_URL", server.openrouter_base_url)
        yield server


def _files(root: Path, name: str) -> list[Path]:
    return sorted((root / "gens").rglob(name)) if (root / "gens").exists() else []


def test_catalogs_load_unchanged_with_documented_defaults(established_root: Path) -> None:
    catalogs = load_catalogs(established_root)
    gemini = catalogs.models["gemini_2.5_flash"]
    assert (gemini.provider, gemini.model, gemini.line) == ("google", "google/gemini-2.5-flash", 2)
    assert gemini.input_price_per_mtok is None and gemini.requests_per_minute is None  # columns it lacks
    assert gemini.extra == {"for_generation": "true", "for_evaluation": "true"}  # columns it adds
    drafts = catalogs.templates["draft"]
    assert drafts["rolling-thread.v2"].generator == "llm"  # no generator column: llm
    assert drafts["creative-synthesis-v10"].parser == "essay_block_lenient"
    assert not drafts["gwern_original"].active and drafts["gwern_original"].parser == "essay_block"
    assert catalogs.templates["essay"]["parsed-from-links-v1"].generator == "copy"
    assert catalogs.concepts["economic.moat"].extra == {"created_date": "2025-06-02"}


def test_check_prints_each_route_and_calls_nothing(
    established_root: Path, openrouter_mock: MockLLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["run", COHORT, "--check", "--data-root", str(established_root)], capsys)
    assert code == 0, err
    assert out.strip().splitlines()[-1] == "ok"
    routes = [line for line in out.splitlines() if line.startswith("route ")]
    assert len(routes) == 4
    assert any("gemini_2.5_flash -> openrouter" in r and "provider 'google' is not a configured route" in r
               for r in routes)
    assert openrouter_mock.stats()["total"] == 0
    assert _files(established_root, "prompt.txt") == []


def test_missing_key_stops_before_any_call_naming_the_variable(
    established_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with MockLLMServer() as server:
        monkeypatch.setenv("DAYDREAMING_OPENROUTER_BASE_URL", server.openrouter_base_url)
        code, _, err = run_cli(["run", COHORT, "--data-root", str(established_root)], capsys)
        assert code == 2
        assert "OPENROUTER_API_KEY is not set" in err and "export OPENROUTER_API_KEY" in err
        for model_id in ("gemini_2.5_flash", "deepseek_r1_f", "sonnet-4", "qwen3-235b-a22b"):
            assert f"model '{model_id}'" in err  # every problem at once
        assert server.stats()["total"] == 0
    assert _files(established_root, "prompt.txt") == [] and _files(established_root, "raw.txt") == []
    assert _files(established_root, "metadata.json")  # the cohort build seeded its metadata


@pytest.mark.slow
def test_established_data_root_runs_end_to_end_against_the_mock(
    established_root: Path, openrouter_mock: MockLLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["run", COHORT, "--data-root", str(established_root)], capsys)
    assert code == 0, err
    members = read_membership(established_root, COHORT)
    assert {s: len(ids) for s, ids in members.items()} == {"draft": 8, "essay": 16, "evaluation": 64, "comparison": 0}
    layer = GensDataLayer.from_root(established_root)
    assert all(layer.parsed_exists(s, g) for s, ids in members.items() for g in ids)
    stats = openrouter_mock.stats()
    assert stats["total"] == 8 + 8 + 64  # copy-mode essays call nothing
    assert stats["by_path"] == {"/api/v1/chat/completions": 80}
    assert set(stats["by_model"]) == {"google/gemini-2.5-flash", "deepseek/deepseek-r1:free",
                                      "qwen/qwen3-235b-a22b", "anthropic/claude-sonnet-4"}
    raw = json.loads((established_root / "gens" / "draft" / members["draft"][0] / "raw_metadata.json").read_text())
    assert (raw["provider"], raw["requested_provider"]) == ("openrouter", "openrouter")
    parsed = json.loads((established_root / "gens" / "draft" / members["draft"][0] / "parsed_metadata.json").read_text())
    assert parsed["parser"] == "essay_block_lenient" and parsed["success"] is True

    code, out, _ = run_cli(["status", COHORT, "--data-root", str(established_root)], capsys)
    assert code == 0 and "failures" not in out
