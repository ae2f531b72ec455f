"""The scores table: exact rows, statuses, lineage, fixed schema, one read per file, clear errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from daydreaming_dagster.data_layer import _storage
from daydreaming_dagster.errors import DaydreamError, MembershipError
from daydreaming_dagster.results import SCORE_SCHEMA, CohortNotFoundError, evaluation_scores

from .conftest import COHORT, EVAL_COST, EVAL_TOKENS, Store


def _by_id(frame: pl.DataFrame) -> dict[str, dict]:
    return {row["evaluation_gen_id"]: row for row in frame.iter_rows(named=True)}


def test_one_row_per_member_evaluation_with_full_lineage(store: Store) -> None:
    rows = _by_id(evaluation_scores(store.root, COHORT))
    assert set(rows) == {
        store.v_a_m1_r1, store.v_a_m1_r2, store.v_a_m2, store.v_copy_m1,
        store.v_copy_m2_parse_error, store.v_b_m1_raw_failed, store.v_b_m2_missing, store.v_ghost,
    }
    assert rows[store.v_a_m1_r2] == {
        "evaluation_gen_id": store.v_a_m1_r2,
        "essay_gen_id": store.e_a,
        "draft_gen_id": store.d_a,
        "combo_id": store.combo_a,
        "concept_ids": "alpha;beta",
        "draft_template": "links",
        "draft_llm": "m1",
        "draft_replicate": 1,
        "essay_template": "expand",
        "essay_mode": "llm",
        "essay_llm": "m1",
        "essay_replicate": 1,
        "evaluation_template": "rubric",
        "evaluation_llm": "m1",
        "evaluation_replicate": 2,
        "evaluator": "rubric/m1",
        "score": 7.0,
        "scale": "0-10",
        "parse_status": "ok",
        "error": None,
        "cost_usd": EVAL_COST,
        "total_tokens": sum(EVAL_TOKENS),
    }
    copy_row = rows[store.v_copy_m1]
    assert (copy_row["essay_template"], copy_row["essay_mode"], copy_row["essay_llm"], copy_row["score"]) == (
        "copy", "copy", None, 9.0)


def test_failed_and_missing_evaluations_are_rows_with_status_and_error(store: Store) -> None:
    rows = _by_id(evaluation_scores(store.root, COHORT))
    statuses = {gid: (r["parse_status"], r["score"], r["error"]) for gid, r in rows.items()}
    assert statuses[store.v_copy_m2_parse_error] == ("parse_error", None, "no score found in the last lines")
    assert statuses[store.v_b_m1_raw_failed] == (
        "raw_failed", None, "truncated: the model stopped at the max_tokens limit")
    assert statuses[store.v_b_m2_missing] == ("missing", None, None)
    assert statuses[store.v_ghost] == ("missing", None, "generation directory or metadata.json is missing")
    # A rejected raw output was still paid for; an evaluation never run has no cost.
    assert rows[store.v_b_m1_raw_failed]["cost_usd"] == EVAL_COST
    assert rows[store.v_b_m2_missing]["cost_usd"] is None
    ghost = rows[store.v_ghost]
    assert all(ghost[c] is None for c in ("essay_gen_id", "draft_gen_id", "combo_id", "evaluation_template"))
    # Lineage of evaluations that failed is still complete.
    assert rows[store.v_b_m1_raw_failed]["concept_ids"] == "beta;gamma"


def test_rows_are_sorted_and_schema_is_fixed(store: Store) -> None:
    frame = evaluation_scores(store.root, COHORT)
    assert dict(frame.schema) == SCORE_SCHEMA
    keys = [(r["essay_gen_id"] is None, r["essay_gen_id"] or "", r["evaluator"] or "", r["evaluation_replicate"] or 0)
            for r in frame.iter_rows(named=True)]
    assert keys == sorted(keys)
    assert frame["evaluation_gen_id"][-1] == store.v_ghost  # no lineage: last


def test_all_null_columns_keep_their_types(store: Store) -> None:
    cohort_dir = store.root / "cohorts" / "ghosts"
    cohort_dir.mkdir()
    (cohort_dir / "membership.csv").write_text(f"stage,gen_id\nevaluation,{store.v_ghost}\n")
    frame = evaluation_scores(store.root, "ghosts")
    assert frame.height == 1
    assert dict(frame.schema) == SCORE_SCHEMA


def test_parent_that_failed_explains_a_missing_evaluation(store: Store) -> None:
    layer = store.layer
    layer.write_raw("essay", store.e_b, "cut off")  # clears the essay's parsed output
    layer.write_raw_metadata("essay", store.e_b, {"failed": True, "failure_reason": "min_lines", "error": "too short"})
    rows = _by_id(evaluation_scores(store.root, COHORT))
    assert rows[store.v_b_m2_missing]["error"] == f"parent essay {store.e_b} is raw_failed (min_lines: too short)"


def test_parents_outside_the_cohort_are_read_for_lineage(store: Store) -> None:
    cohort_dir = store.root / "cohorts" / "evals_only"
    cohort_dir.mkdir()
    (cohort_dir / "membership.csv").write_text(f"stage,gen_id\nevaluation,{store.v_a_m2}\n")
    row = evaluation_scores(store.root, "evals_only").row(0, named=True)
    assert (row["essay_gen_id"], row["draft_gen_id"], row["draft_template"], row["score"]) == (
        store.e_a, store.d_a, "links", 6.0)


def test_each_metadata_file_is_read_once(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: Counter[str] = Counter()
    original = _storage.read_json_object

    def counting(path: Path) -> dict:
        reads[str(path)] += 1
        return original(path)

    monkeypatch.setattr(_storage, "read_json_object", counting)
    evaluation_scores(store.root, COHORT)
    assert reads, "nothing was read"
    assert max(reads.values()) == 1
    # 13 members (2 drafts, 3 essays, 8 evaluations) x 3 metadata files, each tried once.
    assert len(reads) == 13 * 3


def test_malformed_metadata_is_reported_not_fatal(store: Store) -> None:
    store.layer.parsed_metadata_path("evaluation", store.v_a_m2).write_text("{not json")
    row = _by_id(evaluation_scores(store.root, COHORT))[store.v_a_m2]
    assert row["parse_status"] == "missing"
    assert "malformed JSON" in row["error"] and "parsed_metadata.json" in row["error"]


def test_unknown_cohort_is_a_clear_error(store: Store) -> None:
    with pytest.raises(CohortNotFoundError, match=r"cohort 'nope' not found.*known cohorts: c1") as info:
        evaluation_scores(store.root, "nope")
    assert isinstance(info.value, DaydreamError)


def test_cohort_without_membership_is_a_clear_error(store: Store) -> None:
    (store.root / "cohorts" / "empty").mkdir()
    with pytest.raises(CohortNotFoundError, match=r"cohort 'empty' has no membership file .*membership.csv"):
        evaluation_scores(store.root, "empty")
    (store.root / "cohorts" / "empty" / "membership.csv").write_text("stage,gen_id\n")
    with pytest.raises(CohortNotFoundError, match="lists no generations"):
        evaluation_scores(store.root, "empty")


def test_malformed_membership_is_a_membership_error(store: Store) -> None:
    (store.root / "cohorts" / COHORT / "membership.csv").write_text("stage,gen_id\nreview,v_x\n")
    with pytest.raises(MembershipError, match="line 2"):
        evaluation_scores(store.root, COHORT)


def test_invalid_cohort_id_is_rejected(store: Store) -> None:
    with pytest.raises(CohortNotFoundError, match="invalid cohort id"):
        evaluation_scores(store.root, "../c1")
