"""A small data root with catalogs and seeded generations, and a scripted model, for stage tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from daydreaming_dagster.combos import register_combination
from daydreaming_dagster.data_layer import GensDataLayer
from daydreaming_dagster.ids import draft_gen_id, essay_gen_id, evaluation_gen_id
from daydreaming_dagster.llm.base import GenerationRequest, GenerationResult, LLMProvider, Usage

DRAFT_TEMPLATE = """Concepts:
{% for c in concepts %}- {{ c.name }}: {{ c.content }}
{% endfor %}Write notes; put the best idea in <essay-idea stage="1">...</essay-idea>.
"""
ESSAY_TEMPLATE = "Expand into an essay:\n{{ draft_block }}\n"
EVAL_TEMPLATE = "Rate this essay from 0 to 10. End with SCORE: N\n{{ response }}\n"

DRAFT_TEXT = "note one\nnote two\nnote three\n<essay-idea stage=\"1\">A bridge between ideas.</essay-idea>\n"
ESSAY_TEXT = "First paragraph.\n\nSecond paragraph."
EVAL_TEXT = "Originality: 2/3\nClarity: 3/3\nGood work.\nSCORE: 7"


def write_catalogs(root: Path) -> None:
    raw = root / "1_raw"
    (raw / "concepts" / "descriptions-sentence").mkdir(parents=True)
    (raw / "concepts_metadata.csv").write_text("concept_id,name\nalpha,Alpha\nbeta,Beta\n")
    (raw / "concepts" / "descriptions-sentence" / "alpha.txt").write_text("Alpha is first.")
    (raw / "concepts" / "descriptions-sentence" / "beta.txt").write_text("Beta is second.")
    header = "template_id,template_name,description,parser,generator\n"
    (raw / "draft_templates.csv").write_text(header + "d1,Draft,notes,essay_idea_last,llm\nd_bad,Bad,missing var,identity,llm\n")
    (raw / "essay_templates.csv").write_text(header + "e1,Essay,expand,identity,llm\ne_copy,Copy,copy draft,identity,copy\n")
    (raw / "evaluation_templates.csv").write_text(header + "v1,Eval,rate,in_last_line,llm\n")
    for stage, tid, text in [
        ("draft", "d1", DRAFT_TEMPLATE), ("draft", "d_bad", "Hello {{ nonexistent }}"),
        ("essay", "e1", ESSAY_TEMPLATE), ("essay", "e_copy", "unused"), ("evaluation", "v1", EVAL_TEMPLATE),
    ]:
        path = raw / "templates" / stage / f"{tid}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (raw / "llm_models.csv").write_text(
        "id,model,provider,display_name,specialization,input_price_per_mtok,output_price_per_mtok\n"
        "scripted,scripted-model,scripted,Scripted,test,1.0,2.0\n"
    )


@dataclass
class Chain:
    """Gen ids of one seeded draft -> essay -> evaluation chain (plus a copy-mode essay)."""

    combo_id: str
    draft: str
    essay: str
    essay_copy: str
    evaluation: str
    bad_draft: str


def seed_chain(root: Path) -> Chain:
    layer = GensDataLayer.from_root(root)
    combo_id = register_combination(root, ["alpha", "beta"], "sentence", 2)
    draft = draft_gen_id(combo_id, "d1", "scripted", 1)
    bad_draft = draft_gen_id(combo_id, "d_bad", "scripted", 1)
    essay = essay_gen_id(draft, "e1", "scripted", 1)
    essay_copy = essay_gen_id(draft, "e_copy", None, 1)
    evaluation = evaluation_gen_id(essay, "v1", "scripted", 1)
    base = {"cohort_id": "t", "replicate": 1, "combo_id": combo_id}
    for stage, gid, template, parent, model, mode in [
        ("draft", draft, "d1", None, "scripted", "llm"),
        ("draft", bad_draft, "d_bad", None, "scripted", "llm"),
        ("essay", essay, "e1", draft, "scripted", "llm"),
        ("essay", essay_copy, "e_copy", draft, None, "copy"),
        ("evaluation", evaluation, "v1", essay, "scripted", "llm"),
    ]:
        layer.write_main_metadata(stage, gid, {**base, "stage": stage, "gen_id": gid, "template_id": template,
                                               "parent_gen_id": parent, "llm_model_id": model, "mode": mode})
    return Chain(combo_id, draft, essay, essay_copy, evaluation, bad_draft)


@dataclass
class ScriptedProvider(LLMProvider):
    """Answers by stage from a script; counts calls. ``overrides`` maps gen_id -> (text, finish)."""

    name: str = "scripted"
    calls: list[GenerationRequest] = field(default_factory=list)
    overrides: dict[str, tuple[str, str]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=lambda: {"draft": DRAFT_TEXT, "essay": ESSAY_TEXT, "evaluation": EVAL_TEXT})
    on_call: Callable[[GenerationRequest], None] | None = None

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        self.calls.append(request)
        if self.on_call:
            self.on_call(request)
        text, finish = self.overrides.get(request.gen_id, (self.texts[request.stage], "stop"))
        return GenerationResult(
            text=text, finish_reason=finish, provider=self.name, model=request.model,
            usage=Usage(prompt_tokens=10, completion_tokens=20, total_tokens=30, cost_usd=0.001, cost_source="provider"),
        )


@pytest.fixture
def stage_root(data_root: Path) -> Path:
    write_catalogs(data_root)
    return data_root


@pytest.fixture
def chain(stage_root: Path) -> Chain:
    return seed_chain(stage_root)


@pytest.fixture
def provider() -> ScriptedProvider:
    return ScriptedProvider()
