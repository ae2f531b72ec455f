"""Step-level retries of the raw assets: transient provider failures retry with backoff,
final failures (too few lines, truncation) fail once and are never paid for again."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, RetryPolicy, materialize

from daydreaming_dagster.assets.generation import build_generation_assets
from daydreaming_dagster.data_layer import GensDataLayer
from daydreaming_dagster.errors import ProviderError
from daydreaming_dagster.failures import unfinished_generation
from daydreaming_dagster.gens_prompt_io_manager import GensPromptIOManager
from daydreaming_dagster.ids import evaluation_gen_id
from daydreaming_dagster.orchestration import RANGE_END_TAG, RANGE_START_TAG, register_keys
from daydreaming_dagster.resources import DataRootResource, LLMResource, StageSettingsResource

from ..stages.conftest import Chain, ScriptedProvider, seed_chain, write_catalogs

# Fast policy for tests; production uses raw_step_retry_policy() (30 s, 60 s, 120 s).
FAST_ASSETS = build_generation_assets(retry_policy=RetryPolicy(max_retries=2, delay=0.05))
_PROVIDER: dict[str, ScriptedProvider] = {}


class _ScriptedLLM(LLMResource):
    def client(self, models, data_root=None):  # type: ignore[override]
        return _PROVIDER["p"]


class FlakyProvider(ScriptedProvider):
    """Raises a provider error for the first ``fail_times`` calls of listed gen ids."""

    def __init__(self, fail: dict[str, int], *, retryable: bool) -> None:
        super().__init__()
        self.fail = dict(fail)
        self.retryable = retryable

    async def generate(self, request):  # type: ignore[override]
        if self.fail.get(request.gen_id, 0) > 0:
            self.fail[request.gen_id] -= 1
            self.calls.append(request)
            raise ProviderError("HTTP 503 upstream overloaded" if self.retryable else "HTTP 400 bad request",
                                status=503 if self.retryable else 400, retryable=self.retryable)
        return await super().generate(request)


@pytest.fixture
def chain_root(data_root: Path) -> tuple[Path, Chain]:
    write_catalogs(data_root)
    return data_root, seed_chain(data_root)


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as inst:
        yield inst


def _run_essays(instance: DagsterInstance, root: Path, essays: list[str], **settings: object):
    register_keys(instance, "essay", essays)
    return materialize(
        FAST_ASSETS,
        selection=["essay_prompt", "essay_raw", "essay_parsed"],
        instance=instance,
        resources={
            "data_root": DataRootResource(root=str(root)),
            "stage_settings": StageSettingsResource(**settings),
            "llm": _ScriptedLLM(),
            "prompt_io_manager": GensPromptIOManager(data_root=str(root)),
        },
        tags={RANGE_START_TAG: essays[0], RANGE_END_TAG: essays[-1]},
        raise_on_error=False,
    )


def _prepare_drafts(instance: DagsterInstance, root: Path, chain: Chain) -> None:
    _PROVIDER["p"] = ScriptedProvider()
    register_keys(instance, "draft", [chain.draft])
    result = materialize(
        FAST_ASSETS, selection=["draft_prompt", "draft_raw", "draft_parsed"], instance=instance,
        partition_key=chain.draft,
        resources={"data_root": DataRootResource(root=str(root)), "stage_settings": StageSettingsResource(),
                   "llm": _ScriptedLLM(), "prompt_io_manager": GensPromptIOManager(data_root=str(root))},
    )
    assert result.success


def _step_events(instance: DagsterInstance, run_id: str, kind: DagsterEventType) -> list[str]:
    return [r.dagster_event.step_key for r in instance.all_logs(run_id, of_type=kind)]


def test_transient_provider_failure_is_retried_by_dagster(chain_root, instance) -> None:
    root, chain = chain_root
    _prepare_drafts(instance, root, chain)
    flaky = FlakyProvider({chain.essay: 1}, retryable=True)
    _PROVIDER["p"] = flaky
    result = _run_essays(instance, root, [chain.essay, chain.essay_copy])
    assert result.success
    assert _step_events(instance, result.run_id, DagsterEventType.STEP_UP_FOR_RETRY) == ["essay_raw"]
    # First attempt: one failing call; the retry: one successful call. The copy essay made none.
    assert [c.gen_id for c in flaky.calls] == [chain.essay, chain.essay]
    layer = GensDataLayer.from_root(root)
    assert unfinished_generation(layer, "essay", chain.essay) is None
    assert "reason=provider_transient" in layer.read_raw_failure_log("essay", chain.essay)


def test_non_transient_failures_fail_once_without_step_retry(chain_root, instance) -> None:
    root, chain = chain_root
    _prepare_drafts(instance, root, chain)
    flaky = FlakyProvider({chain.essay: 5}, retryable=False)
    _PROVIDER["p"] = flaky
    result = _run_essays(instance, root, [chain.essay, chain.essay_copy])
    assert not result.success
    assert _step_events(instance, result.run_id, DagsterEventType.STEP_UP_FOR_RETRY) == []
    assert len(flaky.calls) == 1
    failure = unfinished_generation(GensDataLayer.from_root(root), "essay", chain.essay)
    assert failure is not None and failure.phase == "raw" and failure.reason == "provider_error"


def test_retry_skips_generations_already_rejected_in_the_run(chain_root, instance) -> None:
    """A step with a transient failure and a truncated output retries, but pays only for the
    transient one again: the truncated answer is final for this run."""
    root, chain = chain_root
    _prepare_drafts(instance, root, chain)
    # A second evaluation, of the copy-mode essay: its answer will be truncated.
    layer = GensDataLayer.from_root(root)
    copy_eval = evaluation_gen_id(chain.essay_copy, "v1", "scripted", 1)
    meta = layer.read_main_metadata("evaluation", chain.evaluation)
    layer.write_main_metadata("evaluation", copy_eval, {**meta, "gen_id": copy_eval, "parent_gen_id": chain.essay_copy})
    _PROVIDER["p"] = ScriptedProvider()
    assert _run_essays(instance, root, [chain.essay, chain.essay_copy]).success

    evals = [chain.evaluation, copy_eval]
    flaky = FlakyProvider({chain.evaluation: 10}, retryable=True)
    flaky.overrides[copy_eval] = ("Looks fine. SCORE: 7", "length")
    _PROVIDER["p"] = flaky
    register_keys(instance, "evaluation", evals)
    result = materialize(
        FAST_ASSETS, selection=["evaluation_prompt", "evaluation_raw", "evaluation_parsed"], instance=instance,
        resources={"data_root": DataRootResource(root=str(root)), "stage_settings": StageSettingsResource(),
                   "llm": _ScriptedLLM(), "prompt_io_manager": GensPromptIOManager(data_root=str(root))},
        tags={RANGE_START_TAG: evals[0], RANGE_END_TAG: evals[-1]}, raise_on_error=False,
    )
    assert not result.success
    # Two retries after the first attempt, each paying only for the transient generation.
    assert _step_events(instance, result.run_id, DagsterEventType.STEP_UP_FOR_RETRY) == ["evaluation_raw"] * 2
    called = [c.gen_id for c in flaky.calls]
    assert called.count(copy_eval) == 1 and called.count(chain.evaluation) == 3
    failures = {f.gen_id: f for f in (unfinished_generation(layer, "evaluation", g) for g in evals) if f}
    assert failures[copy_eval].reason == "truncated"
    assert failures[chain.evaluation].reason == "provider_transient"
