"""Cohort chunks: the plan, and overlapping chunk runs through real Dagster against the mock
model server (one shared call cap, exactly one model call and one directory per gen id)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daydreaming_dagster.assets.generation import build_generation_assets
from daydreaming_dagster.cohorts import build_cohort
from daydreaming_dagster.definitions import build_resources
from daydreaming_dagster.llm.mock_server import MockConfig, MockLLMServer
from daydreaming_dagster.llm.scope import close_call_scope
from daydreaming_dagster.orchestration import (
    CHUNK_TAG,
    default_chunk_count,
    in_process_instance,
    plan_chunks,
    register_keys,
    run_cohort,
)
from daydreaming_dagster.resources import LLMResource
from daydreaming_dagster.types import STAGES

from .support.demo import copy_demo

ASSETS = build_generation_assets(retry_policy=None)


def test_plan_keeps_each_generation_with_its_ancestors_in_membership_order() -> None:
    members = {
        "draft": ["d1", "d2", "d3", "d4", "d5"],
        "essay": ["e1", "e2", "e5", "e_orphan"],
        "evaluation": ["v1", "v5", "v2", "v_orphan"],
    }
    parents = {"e1": "d1", "e2": "d2", "e5": "d5", "e_orphan": "d_elsewhere",
               "v1": "e1", "v5": "e5", "v2": "e2", "v_orphan": None}
    plan = plan_chunks(members, parents, 2)
    assert [chunk["draft"] for chunk in plan] == [["d1", "d2", "d3"], ["d4", "d5"]]
    assert plan[0]["essay"] == ["e1", "e2", "e_orphan"] and plan[1]["essay"] == ["e5"]
    assert plan[0]["evaluation"] == ["v1", "v2", "v_orphan"] and plan[1]["evaluation"] == ["v5"]
    # Every generation in exactly one chunk.
    for stage in STAGES:
        assert sorted(g for chunk in plan for g in chunk[stage]) == sorted(members.get(stage, []))
    assert len(plan_chunks(members, parents, 50)) == 5  # never more chunks than drafts
    assert plan_chunks({"draft": [], "essay": ["e"]}, {}, 4) == [{"draft": [], "essay": ["e"], "evaluation": [], "comparison": []}]


def test_default_chunk_count_fills_the_slots_and_stays_small() -> None:
    assert default_chunk_count(8, 16) == 1
    assert default_chunk_count(256, 64) == 4
    assert default_chunk_count(100_000, 64) == 8
    assert default_chunk_count(0, 16) == 1


@pytest.fixture
def mock_cohort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = copy_demo(tmp_path / "data", mock_model=True)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    membership = build_cohort(root, "demo").membership
    members = {stage: membership.gen_ids(stage) for stage in STAGES}
    parents = membership.parents()
    return root, members, parents


def _run(root: Path, members, parents, server: MockLLMServer, monkeypatch, *, chunks: int, overlap: str,
         concurrency: int = 3, max_cost: float | None = None):
    monkeypatch.setenv("DAYDREAMING_LLM_BASE_URL", server.base_url)
    instance = in_process_instance()
    for stage in STAGES:
        register_keys(instance, stage, members[stage])
    scope = f"test-{chunks}-{overlap}-{max_cost}"
    llm = LLMResource(concurrency=concurrency, max_cost=max_cost, scope=scope)
    resources = build_resources(str(root), llm=llm)
    try:
        outcomes = run_cohort(instance, ASSETS, plan_chunks(members, parents, chunks), STAGES, resources,
                              overlap=overlap, tags={"daydream/cohort": "demo"})
    finally:
        close_call_scope(scope)
    return instance, outcomes


def _llm_generations(root: Path, members) -> int:
    return sum(
        1 for stage in STAGES for g in members[stage]
        if json.loads((root / "gens" / stage / g / "metadata.json").read_text())["mode"] == "llm"
    )


@pytest.mark.slow
def test_overlapping_chunks_share_one_cap_and_call_each_model_once(mock_cohort, monkeypatch) -> None:
    root, members, parents = mock_cohort
    with MockLLMServer(MockConfig(latency_s=0.15)) as server:
        instance, outcomes = _run(root, members, parents, server, monkeypatch, chunks=2, overlap="always")
        stats = server.stats()
    assert all(outcome.success for outcome in outcomes.values())
    # The two chunks ran side by side yet never exceeded the shared cap of 3 calls in flight.
    assert stats["max_in_flight"] == 3
    assert stats["total"] == _llm_generations(root, members)  # no duplicate calls
    for stage in STAGES:
        stage_dir = root / "gens" / stage
        dirs = sorted(p.name for p in stage_dir.iterdir()) if stage_dir.is_dir() else []
        assert dirs == sorted(members[stage])  # exactly one directory per gen id
        assert all((root / "gens" / stage / g / "parsed.txt").is_file() for g in members[stage])
    runs = [instance.get_run_by_id(run_id) for outcome in outcomes.values() for run_id in outcome.run_ids]
    assert len(runs) == 6 and {run.tags[CHUNK_TAG] for run in runs} == {"1/2", "2/2"}
    assert all(run.tags["daydream/cohort"] == "demo" for run in runs)
    instance.dispose()


@pytest.mark.slow
def test_auto_overlap_merges_the_rest_when_calls_are_fast(mock_cohort, monkeypatch) -> None:
    root, members, parents = mock_cohort
    with MockLLMServer(MockConfig(latency_s=0.0)) as server:
        instance, outcomes = _run(root, members, parents, server, monkeypatch, chunks=4, overlap="auto")
        calls = server.stats()["total"]
    runs = [instance.get_run_by_id(run_id) for outcome in outcomes.values() for run_id in outcome.run_ids]
    # The first chunk alone, then chunks 2-4 as one: six runs, not twelve.
    assert sorted({run.tags[CHUNK_TAG] for run in runs}) == ["1/4", "2-4/4"] and len(runs) == 6
    assert calls == _llm_generations(root, members)
    instance.dispose()


@pytest.mark.slow
def test_auto_overlap_starts_the_other_chunks_when_calls_are_slow(mock_cohort, monkeypatch) -> None:
    root, members, parents = mock_cohort
    monkeypatch.setattr("daydreaming_dagster.orchestration.SLOW_CALL_S", 0.2)
    with MockLLMServer(MockConfig(latency_s=0.4)) as server:
        instance, outcomes = _run(root, members, parents, server, monkeypatch, chunks=2, overlap="auto")
        stats = server.stats()
    runs = sorted((instance.get_run_by_id(run_id) for o in outcomes.values() for run_id in o.run_ids),
                  key=lambda run: run.tags[CHUNK_TAG])
    assert {run.tags[CHUNK_TAG] for run in runs} == {"1/2", "2/2"}
    records = {r.dagster_run.run_id: r for r in instance.get_run_records()}
    first_end = max(records[r.run_id].end_time for r in runs if r.tags[CHUNK_TAG] == "1/2")
    second_start = min(records[r.run_id].start_time for r in runs if r.tags[CHUNK_TAG] == "2/2")
    assert second_start < first_end  # overlapped, not one after the other
    assert stats["max_in_flight"] <= 3
    instance.dispose()


def test_several_chunks_without_a_shared_scope_are_refused(mock_cohort) -> None:
    root, members, parents = mock_cohort
    resources = build_resources(str(root), llm=LLMResource(concurrency=2))
    with pytest.raises(ValueError, match="scope"):
        run_cohort(None, ASSETS, plan_chunks(members, parents, 2), STAGES, resources)  # type: ignore[arg-type]


@pytest.mark.slow
def test_overlapping_chunks_share_one_budget_and_resume_without_paying_twice(mock_cohort, monkeypatch) -> None:
    root, members, parents = mock_cohort
    with MockLLMServer(MockConfig(latency_s=0.05)) as server:
        instance, first = _run(root, members, parents, server, monkeypatch, chunks=2, overlap="always",
                               concurrency=2, max_cost=0.0005)
        instance.dispose()
        paid = server.stats()["total"]
        costs = [
            json.loads(p.read_text())["cost_usd"]
            for stage in STAGES for p in (root / "gens" / stage).glob("*/raw_metadata.json")
        ]
        # Both chunks drew on one budget: it stopped new calls for the whole invocation.
        assert not all(outcome.success for outcome in first.values())
        assert 0 < paid < _llm_generations(root, members)
        assert sum(costs) <= 0.0005 + 2 * max(costs)  # at most the calls already in flight over
        instance, second = _run(root, members, parents, server, monkeypatch, chunks=2, overlap="always",
                                concurrency=2)
        total = server.stats()["total"]
    assert all(outcome.success for outcome in second.values())
    assert total == _llm_generations(root, members)  # the resumed run paid only for the rest
    instance.dispose()
