"""Human pairwise preferences: validated, appended durably, torn and malformed lines skipped and
counted, latest per (rater, pair as shown) wins, and the verdict frame of the contract."""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ThreadPoolExecutor

import polars as pl
import pytest

from daydreaming_dagster.results.comparisons import VERDICT_SCHEMA
from daydreaming_dagster.results.human_comparisons import (
    HumanComparison,
    HumanComparisonError,
    append_comparison,
    human_comparisons_frame,
    latest_comparisons,
    read_comparisons,
)

PATH = "cohorts/demo/human_comparisons.jsonl"


def test_append_and_read_round_trip(tmp_path):
    stored = append_comparison(tmp_path, "demo", HumanComparison("e_x", "e_y", "b", "ada", note="<b>y</b>\u2028z"))
    assert stored.id.startswith("h_") and stored.created_at and stored.preference == "B"
    line = (tmp_path / PATH).read_bytes()
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and line.isascii()  # U+2028 escaped
    assert json.loads(line) == {"id": stored.id, "essay_a": "e_x", "essay_b": "e_y", "preference": "B",
                                "rater": "ada", "note": "<b>y</b>\u2028z", "created_at": stored.created_at}
    assert read_comparisons(tmp_path, "demo").comparisons == (stored,)


@pytest.mark.parametrize(("record", "message"), [
    (HumanComparison("e_x", "e_y", "C", "ada"), "preference 'C' is not one of A, B, tie"),
    (HumanComparison("e_x", "e_y", "", "ada"), "is not one of A, B, tie"),
    (HumanComparison("e_x", "e_x", "A", "ada"), "the same essay"),
    (HumanComparison("../e_x", "e_y", "A", "ada"), "essay_a: invalid gen_id"),
    (HumanComparison("e_x", "e y", "A", "ada"), "essay_b: invalid gen_id"),
    (HumanComparison("e_x", "e_y", "A", "<script>"), "invalid rater name"),
    (HumanComparison("e_x", "e_y", "A", "ada", note="x" * 10_001), "note is longer than 10000 characters"),
    (HumanComparison("e_x", "e_y", "A", "ada", note="\ud800"), "lone surrogates"),
])
def test_invalid_preferences_are_refused_and_nothing_is_written(tmp_path, record, message):
    with pytest.raises(HumanComparisonError, match=message):
        append_comparison(tmp_path, "demo", record)
    assert not (tmp_path / PATH).exists()


def test_torn_and_malformed_lines_are_skipped_counted_and_never_glued(tmp_path):
    append_comparison(tmp_path, "demo", HumanComparison("e_x", "e_y", "A", "ada"))
    path = tmp_path / PATH
    with open(path, "ab") as handle:
        handle.write(b'{"essay_a": "e_x", "preference": "B"}\n')  # missing fields
        handle.write(b'{"id": "h_1", "essay_a": "e_x", "essay_b": "e_y", "preference": "maybe", '
                     b'"rater": "bo", "created_at": "t"}\n')  # not a preference
        handle.write(b"[1, 2]\n")
        handle.write(b'{"id": "h_2", "essay_a": "e_')  # a crash mid-append
    append_comparison(tmp_path, "demo", HumanComparison("e_x", "e_y", "tie", "bo"))
    found = read_comparisons(tmp_path, "demo")
    assert found.skipped_lines == 4
    assert [(c.rater, c.preference) for c in found.comparisons] == [("ada", "A"), ("bo", "tie")]


def test_latest_per_rater_and_pair_as_shown_wins(tmp_path):
    for record in (HumanComparison("e_x", "e_y", "A", "ada"), HumanComparison("e_x", "e_y", "B", "bo"),
                   HumanComparison("e_y", "e_x", "A", "ada"),  # the other order: another question
                   HumanComparison("e_x", "e_y", "tie", "ada")):
        append_comparison(tmp_path, "demo", record)
    current = latest_comparisons(read_comparisons(tmp_path, "demo").comparisons)
    assert [(c.rater, c.essay_a, c.essay_b, c.preference) for c in current] == [
        ("ada", "e_x", "e_y", "tie"), ("bo", "e_x", "e_y", "B"), ("ada", "e_y", "e_x", "A")]
    frame = human_comparisons_frame(tmp_path, "demo")
    assert frame.schema == pl.Schema(VERDICT_SCHEMA)
    assert frame.select("essay_a", "essay_b", "judge", "template_id", "replicate", "round", "verdict").rows() == [
        ("e_x", "e_y", "human:ada", "human", 1, 0, "tie"),
        ("e_x", "e_y", "human:bo", "human", 1, 0, "B"),
        ("e_y", "e_x", "human:ada", "human", 1, 0, "A"),
    ]
    ids = {c.id for c in current}
    assert set(frame["comparison_gen_id"]) == ids and len(ids) == 3


def test_empty_frame_has_the_contract_columns(tmp_path):
    frame = human_comparisons_frame(tmp_path, "demo")
    assert frame.is_empty() and list(frame.columns) == list(VERDICT_SCHEMA)


def test_concurrent_thread_appends_keep_every_line(tmp_path):
    records = [HumanComparison(f"e_{i:04d}", "e_zzzz", "AB"[i % 2], f"r{i % 5}", note="n\u0085" * (i % 3))
               for i in range(300)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        stored = list(pool.map(lambda r: append_comparison(tmp_path, "demo", r), records))
    found = read_comparisons(tmp_path, "demo")
    assert found.skipped_lines == 0
    assert sorted(c.id for c in found.comparisons) == sorted(s.id for s in stored)


def _append_many(args: tuple[str, int]) -> int:
    root, worker = args
    for i in range(50):
        append_comparison(root, "demo", HumanComparison(f"e_w{worker}n{i}", "e_other", "tie", f"w{worker}"))
    return worker


def test_concurrent_process_appends_keep_every_line(tmp_path):
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_append_many, [(str(tmp_path), w) for w in range(4)])
    found = read_comparisons(tmp_path, "demo")
    assert found.skipped_lines == 0 and len(found.comparisons) == 200
    assert len({c.essay_a for c in found.comparisons}) == 200


def test_concurrent_appends_on_an_object_store_keep_every_line():
    """Non-local roots read and rewrite the object under the shared append lock."""
    root = "memory://comparisons-race/data"
    records = [HumanComparison(f"e_{i:04d}", "e_zzzz", "tie", f"r{i % 7}") for i in range(150)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(lambda r: append_comparison(root, "demo", r), records))
    found = read_comparisons(root, "demo")
    assert found.skipped_lines == 0
    assert sorted(c.essay_a for c in found.comparisons) == sorted(r.essay_a for r in records)
    from daydreaming_dagster.data_layer.paths import as_root_path

    assert not (as_root_path(root) / f"{PATH}.lock").exists()
