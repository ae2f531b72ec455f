"""The pure stage functions: prompt rendering, raw persistence before validation, parsing,
reuse and force — against real files in a temporary data root."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from daydreaming_dagster.errors import GenerationFailure
from daydreaming_dagster.stages.batch import run_parsed_batch, run_prompt_batch, run_raw_batch
from daydreaming_dagster.stages.context import StageContext
from daydreaming_dagster.stages.parsed import run_parsed_phase
from daydreaming_dagster.stages.prompt import TemplateError, render_template, run_prompt_phase
from daydreaming_dagster.stages.raw import run_raw_phase
from daydreaming_dagster.stages.settings import StageSettings

from .conftest import DRAFT_TEXT, Chain, ScriptedProvider

SETTINGS = StageSettings(min_lines=3, max_tokens=100, temperature=0.5)


def _run_stage(ctx: StageContext, stage: str, gen_id: str, provider: ScriptedProvider, settings: StageSettings = SETTINGS) -> None:
    run_prompt_phase(ctx, stage, gen_id, settings)
    asyncio.run(run_raw_phase(ctx, stage, gen_id, settings, provider, run_id="r1"))
    run_parsed_phase(ctx, stage, gen_id, settings, run_id="r1")


def test_draft_prompt_renders_concepts(stage_root: Path, chain: Chain) -> None:
    ctx = StageContext.for_root(stage_root)
    outcome = run_prompt_phase(ctx, "draft", chain.draft, SETTINGS)
    assert "- Alpha: Alpha is first." in outcome.text
    assert "- Beta: Beta is second." in outcome.text
    assert ctx.layer.read_prompt("draft", chain.draft) == outcome.text
    assert outcome.reused is False
    assert run_prompt_phase(ctx, "draft", chain.draft, SETTINGS).reused is True


def test_missing_template_variable_names_template_and_variable(stage_root: Path, chain: Chain) -> None:
    ctx = StageContext.for_root(stage_root)
    with pytest.raises(GenerationFailure) as info:
        run_prompt_phase(ctx, "draft", chain.bad_draft, SETTINGS)
    message = str(info.value)
    assert "draft/d_bad" in message and "nonexistent" in message
    assert not ctx.layer.prompt_path("draft", chain.bad_draft).exists()


def test_sandbox_blocks_python_internals() -> None:
    with pytest.raises(ValueError, match="unsafe"):
        render_template("{{ ''.__class__.__mro__[1].__subclasses__() }}", {}, template_name="evil")


@pytest.mark.parametrize(("text", "line", "says"), [
    ("Concepts:\n{% for c in concepts %}\n- {{ c.name }}\n{% endfor %}\nAlso {{ summary }}.\n", 5,
     "undefined variable at line 5: 'summary' is undefined"),
    ("one\ntwo {{ concepts[0].nope }}\n", 2, "undefined variable at line 2"),
    ("one\n{% if %}\n", 2, "syntax error at line 2"),
    ("a\nb\n{{ ''.__class__.__mro__ }}\n", 3, "unsafe operation at line 3"),
])
def test_template_errors_name_the_line(text: str, line: int, says: str) -> None:
    with pytest.raises(TemplateError) as info:
        render_template(text, {"concepts": [{"name": "tide"}]}, template_name="draft/t")
    assert info.value.line == line
    assert says in str(info.value) and "draft/t" in str(info.value)


def test_full_chain_writes_every_artefact_with_metadata(stage_root: Path, chain: Chain, provider: ScriptedProvider) -> None:
    ctx = StageContext.for_root(stage_root)
    for stage, gen_id in [("draft", chain.draft), ("essay", chain.essay), ("evaluation", chain.evaluation)]:
        _run_stage(ctx, stage, gen_id, provider)
    layer = ctx.layer
    assert layer.read_parsed("draft", chain.draft) == "A bridge between ideas."
    assert "A bridge between ideas." in layer.read_prompt("essay", chain.essay)
    assert "First paragraph." in layer.read_prompt("evaluation", chain.evaluation)

    raw_meta = layer.read_raw_metadata("evaluation", chain.evaluation)
    for key in ("finish_reason", "truncated", "llm_model_id", "model", "provider_model", "usage", "cost_usd",
                "duration_s", "attempts", "run_id", "started_at", "finished_at", "mode", "reused"):
        assert key in raw_meta, key
    assert raw_meta["model"] == "scripted-model" and raw_meta["llm_model_id"] == "scripted"
    assert raw_meta["usage"]["total_tokens"] == 30 and raw_meta["cost_usd"] == 0.001
    assert raw_meta["truncated"] is False and raw_meta["reused"] is False and raw_meta["run_id"] == "r1"

    parsed_meta = layer.read_parsed_metadata("evaluation", chain.evaluation)
    assert parsed_meta["score"] == 7.0 and parsed_meta["success"] is True
    assert parsed_meta["parser"] == "in_last_line" and parsed_meta["scale"]
    assert [c.stage for c in provider.calls] == ["draft", "essay", "evaluation"]
    assert provider.calls[0].max_tokens == 100 and provider.calls[0].temperature == 0.5


def test_copy_mode_copies_parent_parsed_without_model_call(stage_root: Path, chain: Chain, provider: ScriptedProvider) -> None:
    ctx = StageContext.for_root(stage_root)
    _run_stage(ctx, "draft", chain.draft, provider)
    calls_before = len(provider.calls)
    _run_stage(ctx, "essay", chain.essay_copy, provider)
    assert len(provider.calls) == calls_before
    assert ctx.layer.read_raw("essay", chain.essay_copy) == "A bridge between ideas."
    assert ctx.layer.read_parsed("essay", chain.essay_copy) == "A bridge between ideas."
    assert ctx.layer.read_raw_metadata("essay", chain.essay_copy)["mode"] == "copy"


def test_min_lines_failure_persists_raw_then_raises(stage_root: Path, chain: Chain, provider: ScriptedProvider) -> None:
    ctx = StageContext.for_root(stage_root)
    provider.overrides[chain.draft] = ("just one line", "stop")
    run_prompt_phase(ctx, "draft", chain.draft, SETTINGS)
    with pytest.raises(GenerationFailure) as info:
        asyncio.run(run_raw_phase(ctx, "draft", chain.draft, SETTINGS, provider, run_id="r9"))
    assert info.value.reason == "min_lines"
    layer = ctx.layer
    assert layer.read_raw("draft", chain.draft) == "just one line"
    meta = layer.read_raw_metadata("draft", chain.draft)
    assert meta["failed"] is True and meta["failure_reason"] == "min_lines"
    log = layer.read_raw_failure_log("draft", chain.draft)
    assert "reason=min_lines" in log and "run_id=r9" in log
    assert layer.raw_exists("draft", chain.draft) is False  # rejected output is never reused
    with pytest.raises(GenerationFailure, match="no usable raw output"):
        run_parsed_phase(ctx, "draft", chain.draft, SETTINGS)


def test_truncation_persists_raw_then_raises(stage_root: Path, chain: Chain, provider: ScriptedProvider) -> None:
    ctx = StageContext.for_root(stage_root)
    provider.overrides[chain.draft] = (DRAFT_TEXT[:40], "length")
    run_prompt_phase(ctx, "draft", chain.draft, SETTINGS)
    with pytest.raises(GenerationFailure) as info:
        asyncio.run(run_raw_phase(ctx, "draft", chain.draft, SETTINGS, provider))
    assert info.value.reason == "truncated"
    meta = ctx.layer.read_raw_metadata("draft", chain.draft)
    assert meta["truncated"] is True and meta["finish_reason"] == "length"
    assert "reason=truncated" in ctx.layer.read_raw_failure_log("draft", chain.draft)
    # A second attempt calls the model again and succeeds; the log keeps the history.
    provider.overrides.clear()
    asyncio.run(run_raw_phase(ctx, "draft", chain.draft, SETTINGS, provider))
    assert ctx.layer.raw_exists("draft", chain.draft)
    assert "reason=truncated" in ctx.layer.read_raw_failure_log("draft", chain.draft)


def test_parse_failure_keeps_raw_and_records_error(stage_root: Path, chain: Chain, provider: ScriptedProvider) -> None:
    ctx = StageContext.for_root(stage_root)
    provider.overrides[chain.draft] = ("line a\nline b\nline c, but no tagged idea", "stop")
    run_prompt_phase(ctx, "draft", chain.draft, SETTINGS)
    asyncio.run(run_raw_phase(ctx, "draft", chain.draft, SETTINGS, provider))
    with pytest.raises(GenerationFailure) as info:
        run_parsed_phase(ctx, "draft", chain.draft, SETTINGS)
    assert info.value.reason == "parse_error"
    layer = ctx.layer
    assert layer.raw_path("draft", chain.draft).is_file()
    assert not layer.parsed_path("draft", chain.draft).exists()
    meta = layer.read_parsed_metadata("draft", chain.draft)
    assert meta["success"] is False and meta["error"] and meta["parser"] == "essay_idea_last"
    # The lenient variant falls back to the whole text.
    outcome = run_parsed_phase(ctx, "draft", chain.draft, SETTINGS, parser_name="essay_idea_last_lenient")
    assert layer.read_parsed("draft", chain.draft).startswith("line a")
    assert outcome.metadata["parser"] == "essay_idea_last_lenient"


def test_second_run_reuses_everything_and_calls_no_model(stage_root: Path, chain: Chain, provider: ScriptedProvider) -> None:
    ctx = StageContext.for_root(stage_root)
    _run_stage(ctx, "draft", chain.draft, provider)
    mtimes = {p.name: p.stat().st_mtime_ns for p in ctx.layer.generation_dir("draft", chain.draft).iterdir()}
    provider.calls.clear()

    ctx2 = StageContext.for_root(stage_root)
    assert run_prompt_phase(ctx2, "draft", chain.draft, SETTINGS).reused
    raw = asyncio.run(run_raw_phase(ctx2, "draft", chain.draft, SETTINGS, provider))
    parsed = run_parsed_phase(ctx2, "draft", chain.draft, SETTINGS)
    assert provider.calls == []
    assert raw.reused and raw.metadata["reused"] is True
    assert parsed.reused and parsed.metadata["reused"] is True
    after = {p.name: p.stat().st_mtime_ns for p in ctx.layer.generation_dir("draft", chain.draft).iterdir()}
    assert after == mtimes  # reuse rewrites nothing


def test_force_regenerates_and_clears_downstream(stage_root: Path, chain: Chain, provider: ScriptedProvider) -> None:
    ctx = StageContext.for_root(stage_root)
    _run_stage(ctx, "draft", chain.draft, provider)
    layer = ctx.layer
    first_raw_meta = layer.read_raw_metadata("draft", chain.draft)

    forced = StageSettings(force=True, min_lines=3)
    run_prompt_phase(ctx, "draft", chain.draft, forced)
    # A forced prompt clears raw and parsed (with their metadata) of that generation.
    assert not layer.raw_path("draft", chain.draft).exists()
    assert not layer.raw_metadata_path("draft", chain.draft).exists()
    assert not layer.parsed_path("draft", chain.draft).exists()
    assert not layer.parsed_metadata_path("draft", chain.draft).exists()
    assert layer.main_metadata_path("draft", chain.draft).exists()

    provider.calls.clear()
    asyncio.run(run_raw_phase(ctx, "draft", chain.draft, forced, provider, run_id="r2"))
    assert len(provider.calls) == 1
    assert layer.read_raw_metadata("draft", chain.draft)["run_id"] == "r2" != first_raw_meta["run_id"]
    run_parsed_phase(ctx, "draft", chain.draft, forced)
    assert layer.parsed_exists("draft", chain.draft)


def test_template_edit_invalidates_only_generations_it_renders(stage_root: Path, chain: Chain, provider: ScriptedProvider) -> None:
    ctx = StageContext.for_root(stage_root)
    for stage, gen_id in [("draft", chain.draft), ("essay", chain.essay), ("evaluation", chain.evaluation)]:
        _run_stage(ctx, stage, gen_id, provider)
    (stage_root / "1_raw" / "templates" / "essay" / "e1.txt").write_text("Rewrite as an essay:\n{{ draft_block }}\n")
    provider.calls.clear()
    ctx2 = StageContext.for_root(stage_root)
    assert run_prompt_phase(ctx2, "draft", chain.draft, SETTINGS).reused
    assert not run_prompt_phase(ctx2, "essay", chain.essay, SETTINGS).reused
    assert not ctx2.layer.raw_path("essay", chain.essay).exists()


def test_batches_collect_failures_without_stopping_siblings(stage_root: Path, chain: Chain, provider: ScriptedProvider) -> None:
    ctx = StageContext.for_root(stage_root)
    drafts = [chain.bad_draft, chain.draft]
    report, prompts = run_prompt_batch(ctx, "draft", drafts, SETTINGS)
    assert report.count("failed") == 1 and report.count("done") == 1
    assert report.failures[0].gen_id == chain.bad_draft and report.failures[0].reason == "template"
    raw = asyncio.run(run_raw_batch(ctx, "draft", drafts, SETTINGS, provider, concurrency=4, prompts=prompts))
    assert [s.gen_id for s in raw.statuses] == drafts
    assert raw.count("done") == 1 and raw.failures[0].reason == "prompt_missing"
    assert raw.model_calls == 1 and raw.cost_usd == 0.001 and raw.total_tokens == 30
    parsed = run_parsed_batch(ctx, "draft", drafts, SETTINGS)
    assert parsed.count("done") == 1 and parsed.count("failed") == 1
    summary = parsed.summary()
    assert summary["total"] == 2 and summary["failed"] == 1


def test_raw_metadata_is_valid_sorted_json(stage_root: Path, chain: Chain, provider: ScriptedProvider) -> None:
    ctx = StageContext.for_root(stage_root)
    _run_stage(ctx, "draft", chain.draft, provider)
    text = ctx.layer.raw_metadata_path("draft", chain.draft).read_text(encoding="utf-8")
    data = json.loads(text)
    assert list(data) == sorted(data)



def test_raw_batch_never_exceeds_its_concurrency(stage_root: Path) -> None:
    """More workers than call slots keep requests ready, but calls in flight stay capped."""
    from daydreaming_dagster.data_layer import GensDataLayer
    from daydreaming_dagster.ids import draft_gen_id
    from daydreaming_dagster.llm.base import GenerationRequest, GenerationResult

    from .conftest import seed_chain

    chain = seed_chain(stage_root)
    layer = GensDataLayer.from_root(stage_root)
    gen_ids = []
    for replicate in range(1, 21):
        gen_id = draft_gen_id(chain.combo_id, "d1", "scripted", replicate)
        layer.write_main_metadata("draft", gen_id, {"stage": "draft", "gen_id": gen_id, "template_id": "d1",
                                                    "mode": "llm", "combo_id": chain.combo_id,
                                                    "llm_model_id": "scripted", "replicate": replicate})
        gen_ids.append(gen_id)

    class Tracking(ScriptedProvider):
        in_flight: int = 0
        peak: int = 0

        async def generate(self, request: GenerationRequest) -> GenerationResult:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                await asyncio.sleep(0.01)
                return await super().generate(request)
            finally:
                self.in_flight -= 1

    ctx = StageContext.for_root(stage_root)
    _, prompts = run_prompt_batch(ctx, "draft", gen_ids, SETTINGS)
    provider = Tracking()
    report = asyncio.run(run_raw_batch(ctx, "draft", gen_ids, SETTINGS, provider, concurrency=3, prompts=prompts))
    assert report.count("done") == 20
    assert provider.peak == 3
