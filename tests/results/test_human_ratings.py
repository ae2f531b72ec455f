"""Human ratings file: append-only, validated, torn lines tolerated, latest rating wins."""

from __future__ import annotations

import json

import pytest

from daydreaming_dagster.results.human_ratings import (
    HumanRating,
    HumanRatingError,
    append_rating,
    latest_ratings,
    ratings_frame,
    read_ratings,
)
from daydreaming_dagster.results.scales import normalise_score, scale_bounds


def test_append_and_read_round_trip(tmp_path):
    stored = append_rating(tmp_path, "demo", HumanRating("e_abc", "ada", 7, "0-10", note="<b>ok</b>"))
    assert stored.timestamp  # filled in
    lines = (tmp_path / "cohorts/demo/human_ratings.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {
        "essay_gen_id": "e_abc", "rater": "ada", "score": 7.0, "scale": "0-10",
        "note": "<b>ok</b>", "timestamp": stored.timestamp, "blind": False,
    }
    assert read_ratings(tmp_path, "demo").ratings == (stored,)


def test_torn_last_line_is_skipped_and_next_append_starts_a_new_line(tmp_path):
    append_rating(tmp_path, "demo", HumanRating("e_abc", "ada", 7, "0-10"))
    path = tmp_path / "cohorts/demo/human_ratings.jsonl"
    with open(path, "a") as handle:
        handle.write('{"essay_gen_id": "e_ab')  # a crash mid-append
    append_rating(tmp_path, "demo", HumanRating("e_abc", "ada", 9, "0-10"))
    found = read_ratings(tmp_path, "demo")
    assert found.skipped_lines == 1
    assert [r.score for r in found.ratings] == [7.0, 9.0]
    frame = ratings_frame(tmp_path, "demo")
    assert frame.to_dicts()[0]["score"] == 9.0 and frame.to_dicts()[0]["evaluator"] == "human/ada"
    assert frame.height == 1


@pytest.mark.parametrize(
    ("rating", "message"),
    [
        (HumanRating("../etc", "ada", 5, "0-10"), "invalid gen_id"),
        (HumanRating("e_abc", "", 5, "0-10"), "invalid rater"),
        (HumanRating("e_abc", "a\nb", 5, "0-10"), "invalid rater"),
        (HumanRating("e_abc", "ada", 11, "0-10"), "outside the scale 0-10"),
        (HumanRating("e_abc", "ada", 5, "ten"), "invalid scale"),
    ],
)
def test_invalid_ratings_are_refused_and_nothing_is_written(tmp_path, rating, message):
    with pytest.raises(HumanRatingError, match=message):
        append_rating(tmp_path, "demo", rating)
    assert not (tmp_path / "cohorts/demo/human_ratings.jsonl").exists()


def test_latest_rating_per_rater_and_essay():
    a1 = HumanRating("e_a", "ada", 1, "0-9", timestamp="t1")
    b1 = HumanRating("e_a", "bob", 2, "0-9", timestamp="t1")
    a2 = HumanRating("e_a", "ada", 3, "0-9", timestamp="t2")
    assert latest_ratings([a1, b1, a2]) == [a2, b1]


def test_scales():
    assert scale_bounds("0-9") == (0.0, 9.0)
    assert scale_bounds("1–5") == (1.0, 5.0)
    assert normalise_score(4.5, "0-9") == 0.5
    with pytest.raises(ValueError, match="upper bound"):
        scale_bounds("5-5")
