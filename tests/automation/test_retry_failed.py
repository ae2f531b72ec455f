"""``daydream retry-failed``: after a run with failures, only the failed generations (and the
ones waiting on them) are run again, against the mock model server; finished ones cost nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from daydreaming_dagster.cohorts import read_membership
from daydreaming_dagster.data_layer import GensDataLayer
from daydreaming_dagster.failures import failed_generations, retry_targets
from daydreaming_dagster.llm.mock_server import MockLLMServer, ScriptedResponse
from daydreaming_dagster.types import STAGES
from tests.support.cli import exit_code as run_cli
from tests.support.demo import copy_demo


def _raw_mtimes(layer: GensDataLayer, members: dict, finished_only: bool = True) -> dict[str, int]:
    out = {}
    for stage in STAGES:
        for gen_id in members[stage]:
            path = layer.raw_path(stage, gen_id)
            if path.is_file() and (not finished_only or layer.parsed_exists(stage, gen_id)):
                out[f"{stage}/{gen_id}"] = path.stat().st_mtime_ns
    return out


def test_retry_failed_reruns_only_failed_generations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = copy_demo(tmp_path / "data", mock_model=True)
    with MockLLMServer() as server:
        monkeypatch.setenv("DAYDREAMING_LLM_BASE_URL", server.base_url)
        monkeypatch.setenv("DAYDREAMING_LLM_MAX_ATTEMPTS", "1")
        # The first four model calls (drafts) fail for good: two refused (400), two truncated.
        server.app.script(ScriptedResponse(400, error_message="bad request"), times=2)
        server.app.script(ScriptedResponse(200, text="cut short", finish_reason="length"), times=2)
        assert run_cli(["run", "demo", "--no-report", "--data-root", str(root)]) == 1

        layer = GensDataLayer.from_root(root)
        members = read_membership(str(root), "demo")
        failed_drafts = failed_generations(layer, "draft", members["draft"])
        assert sorted(f.reason for f in failed_drafts) == ["provider_error", "provider_error", "truncated", "truncated"]
        assert all(f.raw_failure_log and Path(f.raw_failure_log).is_file() for f in failed_drafts)
        targets = retry_targets(layer, members)
        # Every unfinished generation descends from a failed draft: 4 drafts, their 8 essays, 16 evaluations.
        assert {s: len(ids) for s, ids in targets.items()} == {"draft": 4, "essay": 8, "evaluation": 16, "comparison": 0}
        llm_targets = {s: sum(layer.read_main_metadata(s, g)["mode"] == "llm" for g in ids) for s, ids in targets.items()}
        calls_before = server.app.stats()["total"]
        finished_before = _raw_mtimes(layer, members)
        assert len(finished_before) == 56 - sum(len(ids) for ids in targets.values())

        assert run_cli(["retry-failed", "demo", "--data-root", str(root)]) == 0

        stats = server.app.stats()
        assert stats["total"] - calls_before == sum(llm_targets.values()) == 24
        retried_by_stage = {s: 0 for s in STAGES}
        for request in stats["requests"][calls_before:]:
            retried_by_stage[request["stage"]] += 1
        assert retried_by_stage == llm_targets
    for stage in STAGES:
        assert failed_generations(layer, stage, members[stage]) == []
    after = _raw_mtimes(layer, members, finished_only=False)
    assert {k: after[k] for k in finished_before} == finished_before  # nothing finished was rewritten
    assert run_cli(["retry-failed", "demo", "--data-root", str(root)]) == 0  # nothing left to do


def test_retry_failed_dry_run_lists_targets(demo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["run", "demo", "--no-report", "--data-root", str(demo_root)]) == 0
    layer = GensDataLayer.from_root(demo_root)
    members = read_membership(str(demo_root), "demo")
    victim = members["evaluation"][3]
    layer.parsed_path("evaluation", victim).write_text("")  # make it look unfinished...
    layer.write_parsed_metadata("evaluation", victim, {"failed": True, "error": "no score found"})
    capsys.readouterr()
    assert run_cli(["retry-failed", "demo", "--dry-run", "--data-root", str(demo_root)]) == 0
    assert capsys.readouterr().out.split() == ["evaluation", victim]
