"""A small, realistic gens store for one cohort, written by hand through the data layer.

Cohort ``c1`` (two combinations, three essays, two evaluators)::

    draft dA (combo A = alpha;beta, links/m1) ── essay eA (expand/m1)
    │                                             ├─ rubric/m1 r1: SCORE 8
    │                                             ├─ rubric/m1 r2: SCORE 7
    │                                             └─ rubric/m2 r1: SCORE 6
    └──────────────────────────────────────── essay eC (copy mode, no model)
                                                  ├─ rubric/m1 r1: SCORE 9
                                                  └─ rubric/m2 r1: parse error
    draft dB (combo B = beta;gamma, links/m2) ── essay eB (expand/m2)
                                                  ├─ rubric/m1 r1: raw rejected (truncated)
                                                  └─ rubric/m2 r1: not run yet (metadata only)
    plus one evaluation listed in the membership whose directory does not exist at all.

Every raw call costs and uses tokens (copy essays none), so totals can be checked exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from daydreaming_dagster.combos import register_combination
from daydreaming_dagster.data_layer import GensDataLayer
from daydreaming_dagster.ids import draft_gen_id, essay_gen_id, evaluation_gen_id

COHORT = "c1"
GHOST_EVALUATION = "v_ghost0000000000"
DRAFT_COST, ESSAY_COST, EVAL_COST = 0.01, 0.02, 0.001
DRAFT_TOKENS, ESSAY_TOKENS, EVAL_TOKENS = (60, 40), (200, 300), (300, 20)


@dataclass(frozen=True)
class Store:
    """Ids of the hand-built cohort."""

    root: Path
    combo_a: str
    combo_b: str
    d_a: str
    d_b: str
    e_a: str
    e_copy: str
    e_b: str
    v_a_m1_r1: str
    v_a_m1_r2: str
    v_a_m2: str
    v_copy_m1: str
    v_copy_m2_parse_error: str
    v_b_m1_raw_failed: str
    v_b_m2_missing: str
    v_ghost: str = GHOST_EVALUATION

    @property
    def layer(self) -> GensDataLayer:
        return GensDataLayer.from_root(self.root)


def _raw_meta(cost: float, tokens: tuple[int, int] | None, **extra: Any) -> dict[str, Any]:
    usage = None
    if tokens is not None:
        usage = {"prompt_tokens": tokens[0], "completion_tokens": tokens[1], "total_tokens": sum(tokens)}
    return {"provider": "scripted", "finish_reason": "stop", "truncated": False, "usage": usage,
            "cost_usd": cost, "duration_s": 0.1, "attempts": 1, **extra}


def _write(
    layer: GensDataLayer,
    stage: str,
    gen_id: str,
    meta: dict[str, Any],
    *,
    raw: tuple[str, dict[str, Any]] | None = None,
    parsed: tuple[str | None, dict[str, Any]] | None = None,
) -> None:
    layer.write_main_metadata(stage, gen_id, {"stage": stage, "gen_id": gen_id, "cohort_id": COHORT, **meta})
    if raw is not None:
        layer.write_raw(stage, gen_id, raw[0])
        layer.write_raw_metadata(stage, gen_id, raw[1])
    if parsed is not None:
        text, parsed_meta = parsed
        if text is not None:
            layer.write_parsed(stage, gen_id, text)
        layer.write_parsed_metadata(stage, gen_id, {"stage": stage, "gen_id": gen_id, **parsed_meta})


def _evaluation(layer: GensDataLayer, gen_id: str, essay: str, combo: str, model: str, replicate: int, score: float) -> None:
    _write(
        layer, "evaluation", gen_id,
        {"template_id": "rubric", "mode": "llm", "parent_gen_id": essay, "combo_id": combo,
         "llm_model_id": model, "replicate": replicate},
        raw=(f"Reasoning.\nSCORE: {score:g}", _raw_meta(EVAL_COST, EVAL_TOKENS)),
        parsed=(f"{score:g}", {"parser": "in_last_line", "success": True, "error": None, "score": score, "scale": "0-10"}),
    )


def build_store(root: Path) -> Store:
    """Write the cohort described in the module docstring under ``root``; return its ids."""
    layer = GensDataLayer.from_root(root)
    combo_a = register_combination(root, ["alpha", "beta"], "sentence", 2)
    combo_b = register_combination(root, ["beta", "gamma"], "sentence", 2)
    d_a = draft_gen_id(combo_a, "links", "m1", 1)
    d_b = draft_gen_id(combo_b, "links", "m2", 1)
    e_a = essay_gen_id(d_a, "expand", "m1", 1)
    e_copy = essay_gen_id(d_a, "copy", None, 1)
    e_b = essay_gen_id(d_b, "expand", "m2", 1)
    ids = {
        "v_a_m1_r1": evaluation_gen_id(e_a, "rubric", "m1", 1),
        "v_a_m1_r2": evaluation_gen_id(e_a, "rubric", "m1", 2),
        "v_a_m2": evaluation_gen_id(e_a, "rubric", "m2", 1),
        "v_copy_m1": evaluation_gen_id(e_copy, "rubric", "m1", 1),
        "v_copy_m2_parse_error": evaluation_gen_id(e_copy, "rubric", "m2", 1),
        "v_b_m1_raw_failed": evaluation_gen_id(e_b, "rubric", "m1", 1),
        "v_b_m2_missing": evaluation_gen_id(e_b, "rubric", "m2", 1),
    }
    store = Store(root, combo_a, combo_b, d_a, d_b, e_a, e_copy, e_b, **ids)

    ok_text = {"parser": "identity", "success": True, "error": None}
    for draft, combo, model in ((d_a, combo_a, "m1"), (d_b, combo_b, "m2")):
        _write(layer, "draft", draft,
               {"template_id": "links", "mode": "llm", "parent_gen_id": None, "combo_id": combo,
                "llm_model_id": model, "replicate": 1},
               raw=(f"notes of {draft}", _raw_meta(DRAFT_COST, DRAFT_TOKENS)),
               parsed=(f"Idea from {draft}.", ok_text))
    for essay, draft, combo, model in ((e_a, d_a, combo_a, "m1"), (e_b, d_b, combo_b, "m2")):
        _write(layer, "essay", essay,
               {"template_id": "expand", "mode": "llm", "parent_gen_id": draft, "combo_id": combo,
                "llm_model_id": model, "replicate": 1},
               raw=(f"Essay {essay}", _raw_meta(ESSAY_COST, ESSAY_TOKENS)),
               parsed=(f"The essay {essay} argues a bridge.\n", ok_text))
    _write(layer, "essay", e_copy,
           {"template_id": "copy", "mode": "copy", "parent_gen_id": d_a, "combo_id": combo_a,
            "llm_model_id": None, "replicate": 1},
           raw=(f"Idea from {d_a}.", {"provider": None, "finish_reason": "copy", "usage": None, "cost_usd": 0.0}),
           parsed=(f"Idea from {d_a}.", ok_text))

    _evaluation(layer, store.v_a_m1_r1, e_a, combo_a, "m1", 1, 8.0)
    _evaluation(layer, store.v_a_m1_r2, e_a, combo_a, "m1", 2, 7.0)
    _evaluation(layer, store.v_a_m2, e_a, combo_a, "m2", 1, 6.0)
    _evaluation(layer, store.v_copy_m1, e_copy, combo_a, "m1", 1, 9.0)
    _write(layer, "evaluation", store.v_copy_m2_parse_error,
           {"template_id": "rubric", "mode": "llm", "parent_gen_id": e_copy, "combo_id": combo_a,
            "llm_model_id": "m2", "replicate": 1},
           raw=("I liked it a lot.", _raw_meta(EVAL_COST, EVAL_TOKENS)),
           parsed=(None, {"parser": "in_last_line", "success": False, "failed": True,
                          "error": "no score found in the last lines"}))
    _write(layer, "evaluation", store.v_b_m1_raw_failed,
           {"template_id": "rubric", "mode": "llm", "parent_gen_id": e_b, "combo_id": combo_b,
            "llm_model_id": "m1", "replicate": 1},
           raw=("Reasoning that never ends", _raw_meta(EVAL_COST, EVAL_TOKENS, finish_reason="length", truncated=True,
                                                      failed=True, failure_reason="truncated",
                                                      error="the model stopped at the max_tokens limit")))
    _write(layer, "evaluation", store.v_b_m2_missing,
           {"template_id": "rubric", "mode": "llm", "parent_gen_id": e_b, "combo_id": combo_b,
            "llm_model_id": "m2", "replicate": 1})

    membership = ["stage,gen_id"]
    membership += [f"draft,{g}" for g in (d_a, d_b)]
    membership += [f"essay,{g}" for g in (e_a, e_copy, e_b)]
    membership += [f"evaluation,{g}" for g in (*ids.values(), GHOST_EVALUATION)]
    cohort_dir = root / "cohorts" / COHORT
    cohort_dir.mkdir(parents=True)
    (cohort_dir / "membership.csv").write_text("\n".join(membership) + "\n")
    return store


@pytest.fixture
def store(data_root: Path) -> Store:
    """The hand-built cohort ``c1`` in a fresh data root."""
    return build_store(data_root)
