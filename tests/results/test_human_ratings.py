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


# Every character str.splitlines treats as a line end, plus text outside the BMP.
LINE_BREAKERS = "\r \r\n \x0b \x0c \x1c \x1d \x1e \x85 \u2028 \u2029 \n"


def test_notes_with_any_line_end_character_survive_every_reader(tmp_path):
    """Issue 23 (1): a note with U+2028 was written raw and split by the reader: the rating
    vanished and a re-rating left the old score in place."""
    first = append_rating(tmp_path, "demo", HumanRating("e_abc", "ada", 3, "0-10", note="a\u2028b"))
    note = f"line one{LINE_BREAKERS}end — ünïcödé 🦀"
    second = append_rating(tmp_path, "demo", HumanRating("e_abc", "ada", 9, "0-10", note=note))
    path = tmp_path / "cohorts/demo/human_ratings.jsonl"
    data = path.read_bytes()
    assert data.isascii()  # escaped: no reader can see a line end inside a rating
    text = data.decode("ascii")
    assert len(text.splitlines()) == 2 and [json.loads(line)["note"] for line in text.splitlines()] == [
        first.note, note]
    found = read_ratings(tmp_path, "demo")
    assert found.skipped_lines == 0 and found.ratings == (first, second)
    frame = ratings_frame(tmp_path, "demo")  # the analysis layer's reader (analysis.load_score_table)
    assert frame.select("score", "note").rows() == [(9.0, note)]
    import polars as pl

    assert pl.read_ndjson(path)["note"].to_list() == [first.note, note]


def test_files_written_raw_by_earlier_versions_still_read(tmp_path):
    path = tmp_path / "cohorts/demo/human_ratings.jsonl"
    path.parent.mkdir(parents=True)
    raw = {"essay_gen_id": "e_abc", "rater": "ada", "score": 4.0, "scale": "0-10", "note": "x\u2028y\x85z\x0c",
           "timestamp": "t", "blind": False}
    path.write_bytes((json.dumps(raw, ensure_ascii=False) + "\n").encode("utf-8"))
    assert [r.note for r in read_ratings(tmp_path, "demo").ratings] == [raw["note"]]
    assert read_ratings(tmp_path, "demo").skipped_lines == 0


def test_a_note_that_is_not_unicode_text_is_refused(tmp_path):
    with pytest.raises(HumanRatingError, match="lone surrogates"):
        append_rating(tmp_path, "demo", HumanRating("e_abc", "ada", 3, "0-10", note="\ud800"))


def test_concurrent_appends_on_an_object_store_keep_every_rating():
    """Issue 23 (4): on non-local roots an append reads and rewrites the object; 200 concurrent
    ratings on memory:// (the s3:// code path) used to leave 178."""
    from concurrent.futures import ThreadPoolExecutor

    root = "memory://ratings-race/data"
    ratings = [HumanRating(f"e_{i:04d}", f"r{i % 7}", float(i % 11), "0-10", note="n\u2028") for i in range(200)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(lambda r: append_rating(root, "demo", r), ratings))
    found = read_ratings(root, "demo")
    assert found.skipped_lines == 0
    assert sorted(r.essay_gen_id for r in found.ratings) == sorted(r.essay_gen_id for r in ratings)
    from daydreaming_dagster.data_layer.paths import as_root_path

    assert not (as_root_path(root) / "cohorts/demo/human_ratings.jsonl.lock").exists()  # released


@pytest.mark.slow
def test_appends_on_s3_wait_for_another_writers_lock(s3_server, monkeypatch):
    """The cross-process half of the append lock against a real S3 server: while another
    writer's lock object exists the append waits; once it is gone the rating is stored."""
    import threading

    from daydreaming_dagster.data_layer.paths import as_root_path
    from tests.support.servers import unique_bucket

    for name, value in (("AWS_ENDPOINT_URL", s3_server.endpoint_url), ("AWS_ACCESS_KEY_ID", s3_server.access_key),
                        ("AWS_SECRET_ACCESS_KEY", s3_server.secret_key), ("AWS_DEFAULT_REGION", s3_server.region)):
        monkeypatch.setenv(name, value)
    bucket = unique_bucket("ratings")
    s3_server.client().create_bucket(Bucket=bucket)
    root = f"s3://{bucket}/data"
    append_rating(root, "demo", HumanRating("e_a", "ada", 1, "0-10"))
    lock = as_root_path(root) / "cohorts/demo/human_ratings.jsonl.lock"
    lock.write_bytes(b"another process")
    done = threading.Event()
    writer = threading.Thread(target=lambda: (append_rating(root, "demo", HumanRating("e_b", "bo", 2, "0-10")),
                                              done.set()))
    writer.start()
    assert not done.wait(0.6)  # held by the other writer
    assert [r.essay_gen_id for r in read_ratings(root, "demo").ratings] == ["e_a"]
    lock.unlink()
    assert done.wait(10)
    writer.join()
    assert [r.essay_gen_id for r in read_ratings(root, "demo").ratings] == ["e_a", "e_b"]
    assert not lock.exists()
