"""Adaptive rounds against the real mock OpenAI-compatible server: a spent ``--max-cost`` ends the
rounds (recorded as ``budget``), and a re-run with more budget continues the same rounds, paying
for nothing twice."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from daydreaming_dagster import app
from daydreaming_dagster.adaptive import read_rounds
from daydreaming_dagster.cohorts import load_membership
from daydreaming_dagster.data_layer import GensDataLayer
from daydreaming_dagster.llm.mock_server import MockConfig, MockLLMServer


def _adaptive_mock_cohort(root: Path) -> None:
    with (root / "1_raw" / "llm_models.csv").open("a", encoding="utf-8") as handle:
        handle.write("mock-model,mock/model,openrouter,Mock,test,1.0,2.0,\n")
    demo = (root / "cohorts" / "demo" / "spec" / "config.yaml").read_text()
    spec = root / "cohorts" / "adapt" / "spec" / "config.yaml"
    spec.parent.mkdir(parents=True)
    spec.write_text(
        demo[demo.index("combos:"):demo.index("axes:")]
        + "axes:\n  draft_template: [links-ideas, links-notes]\n  draft_llm: [mock-model]\n"
        + "  essay_template: [essay-copy]\n"
        + "  evaluation_template: [eval-rubric, eval-overall]\n  evaluation_llm: [mock-model]\n"
        + "  evaluation_template_replicate: [1, 2, 3]\n"
        + "adaptive:\n  evaluation:\n    goal: {top: 2, confidence: 0.95}\n    first: 2\n    batch: 3\n"
    )


def _cost(root: Path, gen_ids: list[tuple[str, str]]) -> float:
    layer = GensDataLayer.from_root(root)
    return sum(float(layer.read_raw_metadata(stage, g).get("cost_usd") or 0.0) for stage, g in gen_ids)


@pytest.mark.slow
def test_budget_ends_rounds_and_a_rerun_continues_them(demo_root: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _adaptive_mock_cohort(demo_root)
    twin = tmp_path / "twin"
    shutil.copytree(demo_root, twin)
    with MockLLMServer(MockConfig()) as server:
        monkeypatch.setenv("DAYDREAMING_LLM_BASE_URL", server.base_url)
        full = app.run(str(twin), "adapt", report=False, concurrency=1)
        progress = full.selection.adaptive
        assert progress.ended in ("goal met", "design exhausted") and len(progress.rounds) >= 3
        calls_uninterrupted = server.stats()["total"]
        membership = load_membership(twin, "adapt")
        first_round = [("evaluation", g) for g, r in full.selection.round_of.items() if r == 1]
        budget = _cost(twin, [("draft", r.gen_id) for r in membership.drafts] + first_round) * 1.0001
        server.reset()

        stopped = app.run(str(demo_root), "adapt", report=False, concurrency=1, max_cost=budget)
        assert stopped.ended_by == "budget"
        assert read_rounds(str(demo_root), "adapt")["adaptive"]["ended"] == "budget"
        assert any("ended by budget" in line for line in app.spending_status(str(demo_root), "adapt"))
        paid_first = server.stats()["total"]
        assert paid_first < calls_uninterrupted

        resumed = app.run(str(demo_root), "adapt", report=False, concurrency=1)
        assert resumed.selection.round_of == full.selection.round_of
        assert resumed.selection.adaptive.ended == progress.ended
        assert server.stats()["total"] == calls_uninterrupted  # the same calls, none twice
