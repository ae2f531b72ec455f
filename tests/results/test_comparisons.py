"""The verdict loader (issue 20): comparison members of a hand-made gens tree and the human
preferences file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daydreaming_dagster.results.cohort import CohortNotFoundError
from daydreaming_dagster.results.comparisons import (
    VERDICT_SCHEMA,
    comparison_verdicts,
    human_comparison_verdicts,
    load_comparisons,
    read_human_comparisons,
)

COHORT = "t1"


def write_comparison(root: Path, gen_id: str, a: str, b: str, *, judge: str = "m1", parsed: str | None = "A",
                     round_number: int = 1, replicate: int = 1, template: str = "compare-overall") -> None:
    """One ``gens/comparison/<id>/`` directory as the contract describes it."""
    directory = root / "gens" / "comparison" / gen_id
    directory.mkdir(parents=True)
    meta = {"stage": "comparison", "gen_id": gen_id, "template_id": template, "mode": "llm", "parent_gen_id": a,
            "parent_gen_ids": [a, b], "combo_id": "c", "llm_model_id": judge, "cohort_id": COHORT,
            "replicate": replicate, "round": round_number}
    (directory / "metadata.json").write_text(json.dumps(meta))
    (directory / "raw.txt").write_text(f"Reasons.\nWINNER: {parsed}")
    if parsed is not None:
        (directory / "parsed.txt").write_text(parsed)


def write_membership(root: Path, cohort: str, rows: list[tuple[str, str]]) -> None:
    directory = root / "cohorts" / cohort
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "membership.csv").write_text("stage,gen_id\n" + "".join(f"{s},{g}\n" for s, g in rows))


def test_comparison_members_are_read_and_unusable_ones_counted(data_root: Path) -> None:
    write_comparison(data_root, "p_one", "e_x", "e_y", parsed="A", round_number=1)
    write_comparison(data_root, "p_two", "e_y", "e_x", parsed="tie\n", judge="m2", round_number=2, replicate=2)
    write_comparison(data_root, "p_three", "e_x", "e_z", parsed="B")
    write_comparison(data_root, "p_unparsed", "e_y", "e_z", parsed=None)
    write_comparison(data_root, "p_garbled", "e_z", "e_y", parsed="maybe")
    write_comparison(data_root, "p_other_cohort", "e_x", "e_y")  # not a member: never read
    write_membership(data_root, COHORT, [("essay", "e_x"), ("comparison", "p_one"), ("comparison", "p_two"),
                                         ("comparison", "p_three"), ("comparison", "p_unparsed"),
                                         ("comparison", "p_garbled"), ("comparison", "p_missing")])
    loaded = load_comparisons(data_root, COHORT)
    assert loaded.n_members == 6 and loaded.n_skipped == 3
    assert loaded.skipped == {"not parsed": 1, "bad verdict": 1, "bad metadata": 1}
    frame = loaded.verdicts
    assert dict(frame.schema) == VERDICT_SCHEMA
    assert frame.rows() == [
        ("p_one", "e_x", "e_y", "m1", "compare-overall", 1, 1, "A"),
        ("p_two", "e_y", "e_x", "m2", "compare-overall", 2, 2, "tie"),
        ("p_three", "e_x", "e_z", "m1", "compare-overall", 1, 1, "B"),
    ]
    assert comparison_verdicts(data_root, COHORT).equals(frame)


def test_a_cohort_without_comparisons_has_an_empty_frame_and_an_unknown_one_raises(data_root: Path) -> None:
    write_membership(data_root, COHORT, [("essay", "e_x")])
    assert comparison_verdicts(data_root, COHORT).height == 0
    with pytest.raises(CohortNotFoundError):
        comparison_verdicts(data_root, "ghost")


def test_human_preferences_latest_per_rater_and_ordered_pair_wins(data_root: Path) -> None:
    write_membership(data_root, COHORT, [("essay", "e_x")])
    lines = [
        {"id": "h1", "essay_a": "e_x", "essay_b": "e_y", "preference": "A", "rater": "ada", "created_at": "t1"},
        {"id": "h2", "essay_a": "e_y", "essay_b": "e_x", "preference": "B", "rater": "ada", "created_at": "t2"},
        {"id": "h3", "essay_a": "e_x", "essay_b": "e_y", "preference": "tie", "rater": "ada", "created_at": "t3"},
        {"id": "h4", "essay_a": "e_x", "essay_b": "e_y", "preference": "B", "rater": "bo", "note": "close",
         "created_at": "t4"},
        {"id": "h5", "essay_a": "e_x", "essay_b": "e_x", "preference": "A", "rater": "bo"},  # itself: malformed
        {"id": "h6", "essay_a": "e_x", "essay_b": "e_y", "preference": "C", "rater": "bo"},  # bad preference
    ]
    text = "\n".join(json.dumps(line) for line in lines) + '\n{"torn": \n["not", "an object"]\n'
    (data_root / "cohorts" / COHORT / "human_comparisons.jsonl").write_text(text)
    frame, skipped = read_human_comparisons(data_root, COHORT)
    assert skipped == 4
    assert sorted(frame.select("comparison_gen_id", "essay_a", "essay_b", "judge", "verdict").rows()) == [
        ("h2", "e_y", "e_x", "human:ada", "B"),
        ("h3", "e_x", "e_y", "human:ada", "tie"),
        ("h4", "e_x", "e_y", "human:bo", "B"),
    ]
    assert human_comparison_verdicts(data_root, "no_file_here").height == 0
