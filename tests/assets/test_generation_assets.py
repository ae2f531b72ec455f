"""The nine generation assets through real Dagster ``materialize`` on a temporary instance."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from daydreaming_dagster.assets.generation import GENERATION_ASSETS
from daydreaming_dagster.gens_prompt_io_manager import GensPromptIOManager
from daydreaming_dagster.orchestration import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    register_keys,
    run_stage,
)
from daydreaming_dagster.resources import DataRootResource, LLMResource, StageSettingsResource

from ..stages.conftest import Chain, ScriptedProvider, seed_chain, write_catalogs

_PROVIDERS: dict[str, ScriptedProvider] = {}


class ScriptedLLMResource(LLMResource):
    """The real resource with its client swapped for the scripted test model."""

    provider_key: str = "default"

    def client(self, models, data_root=None):  # type: ignore[override]
        return _PROVIDERS[self.provider_key]


@pytest.fixture
def provider() -> ScriptedProvider:
    _PROVIDERS["default"] = ScriptedProvider()
    return _PROVIDERS["default"]


@pytest.fixture
def chain_root(data_root: Path) -> tuple[Path, Chain]:
    write_catalogs(data_root)
    return data_root, seed_chain(data_root)


@pytest.fixture
def instance() -> DagsterInstance:
    with DagsterInstance.ephemeral() as inst:
        yield inst


def _resources(root: Path, **settings: object) -> dict[str, object]:
    return {
        "data_root": DataRootResource(root=str(root)),
        "stage_settings": StageSettingsResource(**settings),
        "llm": ScriptedLLMResource(),
        "prompt_io_manager": GensPromptIOManager(data_root=str(root)),
    }


def _materialize_one(instance: DagsterInstance, root: Path, stage: str, gen_id: str, **settings: object):
    return materialize(
        GENERATION_ASSETS,
        selection=[f"{stage}_prompt", f"{stage}_raw", f"{stage}_parsed"],
        partition_key=gen_id,
        instance=instance,
        resources=_resources(root, **settings),
        raise_on_error=False,
    )


def test_per_partition_chain_and_metadata(chain_root, instance, provider) -> None:
    root, chain = chain_root
    for stage, gen_id in [("draft", chain.draft), ("essay", chain.essay), ("evaluation", chain.evaluation)]:
        register_keys(instance, stage, [gen_id])
        result = _materialize_one(instance, root, stage, gen_id)
        assert result.success, stage
    eval_dir = root / "gens" / "evaluation" / chain.evaluation
    assert sorted(p.name for p in eval_dir.iterdir()) == [
        "metadata.json", "parsed.txt", "parsed_metadata.json", "prompt.txt", "raw.txt", "raw_metadata.json",
    ]
    mats = result.asset_materializations_for_node("evaluation_raw")
    meta = mats[0].metadata
    assert meta["reused"].value is False
    assert meta["total_tokens"].value == 30
    assert meta["path"].value == str(eval_dir / "raw.txt")
    assert meta["raw_metadata"].value["finish_reason"] == "stop"
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"parsed_text_present": True, "score_in_range": True}

    # Second run: zero model calls, every phase reports reused.
    provider.calls.clear()
    again = _materialize_one(instance, root, "evaluation", chain.evaluation)
    assert again.success and provider.calls == []
    assert again.asset_materializations_for_node("evaluation_raw")[0].metadata["reused"].value is True
    assert again.asset_materializations_for_node("evaluation_parsed")[0].metadata["reused"].value is True


def test_min_lines_failure_fails_asset_and_keeps_artefacts(chain_root, instance, provider) -> None:
    root, chain = chain_root
    provider.overrides[chain.draft] = ("one line only", "stop")
    register_keys(instance, "draft", [chain.draft])
    result = _materialize_one(instance, root, "draft", chain.draft, draft_min_lines=3)
    assert not result.success
    failures = result.get_step_failure_events()
    assert [f.step_key for f in failures] == ["draft_raw"]
    assert chain.draft in failures[0].step_failure_data.error.message
    gen_dir = root / "gens" / "draft" / chain.draft
    assert (gen_dir / "raw.txt").read_text() == "one line only"
    assert (gen_dir / "raw_metadata.json").is_file()
    assert "reason=min_lines" in (gen_dir / "raw_failure.log").read_text()
    assert not (gen_dir / "parsed.txt").exists()


def test_force_regenerates_through_dagster(chain_root, instance, provider) -> None:
    root, chain = chain_root
    register_keys(instance, "draft", [chain.draft])
    assert _materialize_one(instance, root, "draft", chain.draft).success
    provider.calls.clear()
    assert _materialize_one(instance, root, "draft", chain.draft, force_draft=True).success
    assert len(provider.calls) == 1


def test_range_run_covers_many_partitions_in_one_run(chain_root, instance, provider) -> None:
    root, chain = chain_root
    drafts = [chain.draft, chain.bad_draft]
    register_keys(instance, "draft", drafts)
    result = materialize(
        GENERATION_ASSETS,
        selection=["draft_prompt", "draft_raw", "draft_parsed"],
        instance=instance,
        resources=_resources(root),
        tags={RANGE_START_TAG: drafts[0], RANGE_END_TAG: drafts[-1]},
        raise_on_error=False,
    )
    # Pre-flight (the prompt step, first of the run) stops the whole range on the bad
    # template: no prompt written, no model called, one line naming template and variable.
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data
    assert "draft/d_bad" in failure.error.message and "nonexistent" in failure.error.message
    assert not (root / "gens" / "draft" / chain.draft / "prompt.txt").exists()
    assert provider.calls == []

    # The orchestrator launches nothing after a pre-flight failure; without the bad draft the
    # range runs through in one run.
    stopped = run_stage(instance, GENERATION_ASSETS, "draft", drafts, _resources(root))
    assert not stopped.success and len(stopped.run_ids) == 1 and provider.calls == []
    outcome = run_stage(instance, GENERATION_ASSETS, "draft", [chain.draft], _resources(root))
    assert outcome.success and len(outcome.run_ids) == 1
    assert (root / "gens" / "draft" / chain.draft / "parsed.txt").is_file()
    assert len([c for c in provider.calls if c.gen_id == chain.draft]) == 1

    # Both essays of the good draft: one run covers both partitions, all phases.
    essays = [chain.essay, chain.essay_copy]
    register_keys(instance, "essay", essays)
    essay_outcome = run_stage(instance, GENERATION_ASSETS, "essay", essays, _resources(root))
    assert essay_outcome.success and len(essay_outcome.run_ids) == 1
    run = instance.get_run_by_id(essay_outcome.run_ids[0])
    assert run.tags[RANGE_START_TAG] == chain.essay and run.tags[RANGE_END_TAG] == chain.essay_copy
    for gen_id in essays:
        assert (root / "gens" / "essay" / gen_id / "parsed.txt").is_file()
