"""Judge diagnostics (issue 19 item 8): planted self-preference, length slopes and ceiling-heavy
judges are recovered inside their intervals, and null versions keep 0 inside the interval in most
of a few seeded repetitions."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from scipy.special import stdtrit

from daydreaming_dagster.analysis._essay_model import fit_essay_model
from daydreaming_dagster.analysis._judges import (
    HEAVY_SHARE,
    POOLED,
    JudgeDiagnostics,
    judge_diagnostics,
    wilson_interval,
)
from daydreaming_dagster.analysis._table import prepare_scores

WRITERS = ("m1", "m2", "m3")
REPETITIONS = 25


def _self_table(seed: int, *, delta: dict[str, float], essays_per_writer: int = 10, noise: float = 0.5,
                judges: tuple[str, ...] = WRITERS, copy_share: float = 0.0) -> pl.DataFrame:
    """Every judge model scores every essay once; a judge adds ``delta[model]`` to essays its model
    wrote. A ``copy_share`` of essays are copy-mode (essay_llm ``(copy)``, written by the draft's model)."""
    rng = np.random.default_rng(seed)
    offsets = dict(zip(judges, rng.normal(0.0, 1.0, len(judges)), strict=True))
    rows = []
    for writer in WRITERS:
        for k in range(essays_per_writer):
            essay, quality = f"{writer}-e{k}", rng.normal(5.0, 1.0)
            copy = rng.random() < copy_share
            for judge in judges:
                score = quality + offsets[judge] + (delta.get(judge, 0.0) if judge == writer else 0.0)
                rows.append({"essay_gen_id": essay, "evaluator": f"rubric/{judge}",
                             "score": score + rng.normal(0.0, noise), "essay_template": "expand",
                             "essay_llm": "(copy)" if copy else writer, "draft_llm": writer,
                             "evaluation_template": "rubric", "evaluation_llm": judge})
    return pl.DataFrame(rows)


def _diagnose(table: pl.DataFrame, lengths: dict[str, int] | None = None) -> JudgeDiagnostics:
    scores = prepare_scores(table)
    return judge_diagnostics(scores, fit_essay_model(scores), lengths)


def _row(diagnostics: JudgeDiagnostics, model: str):  # noqa: ANN202 - SelfPreference
    return next(row for row in diagnostics.self_preference if row.evaluation_llm == model)


def _covers(low: float | None, high: float | None, value: float) -> bool:
    assert low is not None and high is not None
    return low <= value <= high


# -- self-preference -------------------------------------------------------------------------
def test_a_planted_self_preference_is_recovered_pooled_and_for_its_model() -> None:
    found = _diagnose(_self_table(1, delta={"m1": 1.0}, essays_per_writer=15))
    m1, m2, pooled = _row(found, "m1"), _row(found, "m2"), _row(found, POOLED)
    assert _covers(m1.ci_low, m1.ci_high, 1.0) and m1.ci_low > 0
    assert _covers(m2.ci_low, m2.ci_high, 0.0)
    assert pooled.ci_low is not None and pooled.ci_low > 0 and pooled.family_size == 1
    assert m1.family_size == 3 and (m1.n_own, m1.n_other, m1.n_evaluators) == (15, 30, 1)
    assert m1.sentence().startswith("m1 scores its own essays ") and ", simultaneous over 3 models; 15 scores of own-model essays" in m1.sentence()
    assert m2.sentence().startswith("No evidence of self-preference by m2")


def test_the_estimate_equals_the_full_dummy_regression() -> None:
    """Frisch–Waugh: the same coefficient and standard error as one least-squares fit with
    essay and evaluator dummies and the own-model indicator."""
    table = _self_table(2, delta={"m1": 0.7, "m2": 0.7, "m3": 0.7}, essays_per_writer=6)
    scores = prepare_scores(table)
    pooled = _row(judge_diagnostics(scores, fit_essay_model(scores), None), POOLED)
    frame = scores.frame
    own = (frame["evaluation_llm"] == frame["essay_llm"]).to_numpy().astype(float)
    essays = np.eye(scores.n_essays)[scores.essay_index]
    judges = np.eye(len(scores.evaluators))[scores.evaluator_index][:, 1:]  # one dropped: identifiable
    design = np.column_stack([essays, judges, own])
    beta, *_ = np.linalg.lstsq(design, scores.y, rcond=None)
    residual = scores.y - design @ beta
    df = scores.n_scores - design.shape[1]
    se = np.sqrt(residual @ residual / df * np.linalg.inv(design.T @ design)[-1, -1])
    assert pooled.estimate == pytest.approx(beta[-1], abs=1e-9) and abs(beta[-1]) > 0.3
    assert pooled.ci_high - pooled.estimate == pytest.approx(stdtrit(df, 0.975) * se, rel=1e-9)


def test_planted_and_null_self_preference_over_repetitions() -> None:
    planted = [_row(_diagnose(_self_table(100 + i, delta={"m1": 0.8, "m2": 0.8, "m3": 0.8})), POOLED)
               for i in range(REPETITIONS)]
    null = [_row(_diagnose(_self_table(200 + i, delta={})), POOLED) for i in range(REPETITIONS)]
    assert sum(_covers(r.ci_low, r.ci_high, 0.8) for r in planted) >= 0.8 * REPETITIONS
    assert sum(r.ci_low > 0 for r in planted) >= 0.9 * REPETITIONS  # the effect is found
    assert sum(_covers(r.ci_low, r.ci_high, 0.0) for r in null) >= 0.8 * REPETITIONS
    assert np.mean([r.estimate for r in planted]) == pytest.approx(0.8, abs=0.1)


def test_copy_mode_essays_belong_to_the_drafts_model() -> None:
    found = _diagnose(_self_table(3, delta={"m2": 1.5}, essays_per_writer=12, copy_share=1.0))
    m2 = _row(found, "m2")
    assert m2.n_own == 12 and m2.ci_low is not None and m2.ci_low > 0


def test_not_in_this_design_when_no_judge_scores_its_own_and_others() -> None:
    outsiders = _diagnose(_self_table(4, delta={}, judges=("j1", "j2")))
    assert outsiders.self_preference == ()
    assert outsiders.self_preference_note is not None and outsiders.self_preference_note.startswith("not in this design")
    assert outsiders.sentences()[0].startswith("Self-preference is not in this design: no evaluator scores both")
    # A judge that scores only its own model's essays: its preference is its offset, not estimable.
    table = _self_table(5, delta={}).filter(
        (pl.col("evaluation_llm") != "m1") | (pl.col("essay_llm") == "m1"))
    found = _diagnose(table)
    assert "m1" not in {row.evaluation_llm for row in found.self_preference}
    no_columns = _diagnose(_self_table(6, delta={}).drop("essay_llm", "draft_llm"))
    assert no_columns.self_preference_note is not None and "no essay_llm" in no_columns.self_preference_note


# -- length bias -----------------------------------------------------------------------------
def _length_table(seed: int, *, slope: float, essays: int = 20, templates: tuple[str, ...] = ("expand",),
                  ) -> tuple[pl.DataFrame, dict[str, int]]:
    """Essays of uniform 300-900 words whose true mean rises ``slope`` per 100 words, scored by
    three judges with offsets."""
    rng = np.random.default_rng(seed)
    rows, lengths = [], {}
    for template in templates:
        for k in range(essays):
            essay = f"{template}-e{k}"
            lengths[essay] = int(rng.integers(300, 900))
            mean = 5.0 + slope * lengths[essay] / 100 + rng.normal(0.0, 0.6)
            for j, offset in enumerate((-1.0, 0.0, 1.0)):
                rows.append({"essay_gen_id": essay, "evaluator": f"rubric/j{j}", "score": mean + offset + rng.normal(0, 0.4),
                             "essay_template": template, "evaluation_template": "rubric", "evaluation_llm": f"j{j}"})
    return pl.DataFrame(rows), lengths


def test_a_planted_length_slope_is_recovered_and_controlled_for() -> None:
    table, lengths = _length_table(7, slope=0.5, essays=30)
    found = _diagnose(table, lengths)
    (row,) = found.length_bias
    assert _covers(row.ci_low, row.ci_high, 0.5) and row.ci_low > 0 and row.n_essays == 30
    assert row.sentence().startswith("Within essay template expand, scores rise by ")
    assert "association" in row.sentence()
    raw = np.array([e.mean for e in found.length_controlled])
    controlled = np.array([e.controlled for e in found.length_controlled])
    words = np.array([e.length for e in found.length_controlled], dtype=float)
    assert np.corrcoef(raw, words)[0, 1] > 0.5
    assert abs(np.corrcoef(controlled, words)[0, 1]) < 1e-9  # length removed exactly
    assert controlled.mean() == pytest.approx(raw.mean())  # centred on the template's mean length


def test_planted_and_null_length_slopes_over_repetitions() -> None:
    planted = [_diagnose(*_length_table(300 + i, slope=0.4)).length_bias[0] for i in range(REPETITIONS)]
    null = [_diagnose(*_length_table(400 + i, slope=0.0)).length_bias[0] for i in range(REPETITIONS)]
    assert sum(_covers(r.ci_low, r.ci_high, 0.4) for r in planted) >= 0.8 * REPETITIONS
    assert sum(_covers(r.ci_low, r.ci_high, 0.0) for r in null) >= 0.8 * REPETITIONS
    assert sum(r.sentence().startswith("Within essay template expand, no clear link") for r in null) >= 0.8 * REPETITIONS


def test_length_slopes_are_per_template_and_small_templates_say_too_few() -> None:
    table, lengths = _length_table(8, slope=0.3, essays=12, templates=("expand", "short"))
    table = table.filter(~pl.col("essay_gen_id").is_in([f"short-e{k}" for k in range(3, 12)]))
    found = _diagnose(table, lengths)
    expand, short = found.length_bias
    assert (expand.essay_template, short.essay_template) == ("expand", "short")
    assert expand.family_size == short.family_size == 2 and expand.slope is not None
    assert (short.slope, short.ci_low, short.note, short.n_essays) == (None, None, "too few to say", 3)
    assert "too few to say whether length moves scores" in short.sentence()
    assert all(e.controlled is None for e in found.length_controlled if e.essay_template == "short")


def test_unknown_lengths_are_left_out_or_the_check_skipped() -> None:
    table, lengths = _length_table(9, slope=0.0)
    partial = {essay: words for essay, words in lengths.items() if not essay.endswith("e0")}
    found = _diagnose(table, partial)
    assert found.length_bias[0].n_essays == 19 and found.length_note == "1 of 20 essays have no known length and are left out"
    skipped = _diagnose(table, None)
    assert skipped.length_bias == () and skipped.length_note is not None and "not known" in skipped.length_note


# -- scale use -------------------------------------------------------------------------------
def test_wilson_interval_matches_published_values() -> None:
    # Wilson (1927) score interval, 95%: 0/10 → (0, 0.2775), 5/10 → (0.2366, 0.7634).
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert wilson_interval(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def _scale_table(seed: int, ceiling_p: dict[str, float], n: int = 80, scale: str | None = "0-10") -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for judge, p in ceiling_p.items():
        for k in range(n):
            score = 10.0 if rng.random() < p else float(rng.integers(1, 10))
            rows.append({"essay_gen_id": f"e{k}", "evaluator": judge, "score": score,
                         **({"scale": scale} if scale else {})})
    return pl.DataFrame(rows)


def test_a_ceiling_heavy_judge_is_named_and_others_are_not() -> None:
    found = _diagnose(_scale_table(10, {"generous": 0.6, "strict": 0.05}))
    generous, strict = found.scale_use
    assert generous.evaluator == "generous" and generous.crowds_ceiling and _covers(generous.ceiling_low, generous.ceiling_high, 0.6)
    assert not strict.crowds_ceiling and strict.floor_share == 0.0
    sentences = [s for s in found.sentences() if "top score" in s]
    assert len(sentences) == 1 and sentences[0].startswith("generous gives the top score (10 on 0-10) to ")
    calm = _diagnose(_scale_table(11, {"a": 0.05, "b": 0.1}))
    assert any(s.startswith(f"No evaluator is shown to give the top score (10 on 0-10) to more than {HEAVY_SHARE:.0%}")
               for s in calm.sentences())
    never = _diagnose(_scale_table(11, {"a": 0.0, "b": 0.0}))
    assert "No evaluator gives the top score (10 on 0-10) to any essay." in never.sentences()


def test_ceiling_share_intervals_cover_the_truth_over_repetitions() -> None:
    uses = [_diagnose(_scale_table(500 + i, {"j": 0.3}, n=60)).scale_use[0] for i in range(REPETITIONS)]
    assert sum(_covers(u.ceiling_low, u.ceiling_high, 0.3) for u in uses) >= 0.8 * REPETITIONS


def test_scale_use_is_skipped_without_a_scale_and_uses_0_1_after_normalising() -> None:
    unknown = _diagnose(_scale_table(12, {"a": 0.5, "b": 0.1}, scale=None))
    assert unknown.scale_use == () and unknown.scale_note is not None and "no scale" in unknown.scale_note
    assert "Scale use is not checked: the score table gives no scale, so its top and bottom are unknown." in unknown.sentences()
    mixed = _scale_table(13, {"a": 0.5, "b": 0.1}).with_columns(
        pl.when(pl.col("evaluator") == "b").then(pl.lit("0-10")).otherwise(pl.lit("1-10")).alias("scale"),
        pl.col("score").clip(1, 10))
    found = _diagnose(mixed)
    assert (found.scale, found.ceiling, found.floor) == ("0-1", 1.0, 0.0)
    assert found.scale_use[0].ceiling_share == pytest.approx(
        mixed.filter(pl.col("evaluator") == "a")["score"].eq(10).mean())


# -- output ----------------------------------------------------------------------------------
def test_json_tables_and_sentences() -> None:
    table, lengths = _length_table(14, slope=0.3)
    table = table.with_columns(pl.lit("0-10").alias("scale"), pl.col("score").clip(0, 10))
    found = _diagnose(table, lengths)
    payload = json.loads(json.dumps(found.to_dict()))
    assert set(payload) >= {"self_preference", "self_preference_note", "length_bias", "length_controlled",
                            "scale_use", "scale_note", "sentences"}
    assert payload["length_bias"][0]["slope_per_100_words"] == pytest.approx(found.length_bias[0].slope)
    tables = found.tables()
    assert tables["judge_length_controlled"].height == 20 and tables["judge_scale_use"].height == 3
    assert tables["judge_self_preference"].height == 0 and "judge_self_preference" in tables
    assert len(found.sentences()) == 3  # self-preference note, one template, one scale sentence


def test_a_design_with_no_degrees_of_freedom_left_says_too_few() -> None:
    table = _self_table(15, delta={}, essays_per_writer=1, judges=("m1", "m2")).filter(
        pl.col("essay_llm").is_in(["m1", "m2"]))
    found = _diagnose(table)  # 2 essays × 2 judges: nothing left once essays, offsets and δ are fitted
    pooled = _row(found, POOLED)
    assert (pooled.estimate, pooled.ci_low, pooled.note) == (None, None, "too few to say")
    assert pooled.sentence() == "Self-preference of the judges taken together: too few to say."
