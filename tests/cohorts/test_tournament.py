"""The tournament section of a spec, comparison ids, and how a cohort build replays Swiss rounds
from the verdicts on disk (hand-written parsed outputs; no model, no Dagster)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daydreaming_dagster.cohorts import build_cohort, load_membership, read_membership
from daydreaming_dagster.cohorts.estimate import estimate_cohort
from daydreaming_dagster.cohorts.spec import parse_spec
from daydreaming_dagster.data_layer import GensDataLayer
from daydreaming_dagster.data_layer.gens_data_layer import resolve_generation_metadata
from daydreaming_dagster.errors import MembershipError, SpecError
from daydreaming_dagster.ids import comparison_gen_id
from tests.support.demo import copy_demo

BASE = {
    "axes": {"combo_id": ["c1"], "draft_template": ["t"], "draft_llm": ["m"], "essay_template": ["e"],
             "essay_llm": ["m"]},
}


def _tournament(**section: object) -> dict[str, object]:
    return {**BASE, "tournament": {"template": ["compare-overall"], "judge_llm": ["offline"], "rounds": 3, **section}}


def test_spec_tournament_section_parses_with_defaults() -> None:
    spec = parse_spec({**_tournament(), "output": {"seed": 7}})
    t = spec.tournament
    assert t is not None
    assert (t.templates, t.judges, t.rounds, t.both_orders, t.pool_top, t.replicates, t.seed) == (
        ("compare-overall",), ("offline",), 3, True, None, 1, 7)
    assert t.calls_per_pair() == 2 and t.total_calls(16) == 3 * 8 * 2 and t.total_calls(17) == 3 * 8 * 2
    top = parse_spec(_tournament(pool={"top": 5}, both_orders=False, judge_llm=["a", "b"])).tournament
    assert top is not None and top.pool_top == 5 and top.total_calls(16) == 3 * 2 * 1 * 2
    assert parse_spec(BASE).tournament is None


@pytest.mark.parametrize(
    ("section", "rule", "says"),
    [
        ({"rounds": 0}, "tournament.rounds", "integer >= 1"),
        ({"rounds": "five"}, "tournament.rounds", "'five'"),
        ({"pool": "most"}, "tournament.pool", "{top: N}"),
        ({"pool": {"top": 1}}, "tournament.pool.top", ">= 2"),
        ({"both_orders": "yes"}, "tournament.both_orders", "true or false"),
        ({"judge_llm": []}, "tournament.judge_llm", "non-empty list"),
        ({"colour": "red"}, "tournament", "unknown key(s) colour"),
    ],
)
def test_spec_tournament_mistakes_name_the_rule(section: dict[str, object], rule: str, says: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(_tournament(**section))
    assert f": {rule}: " in str(info.value) and says in str(info.value)


def test_spec_tournament_requires_its_keys() -> None:
    with pytest.raises(SpecError, match="missing 'rounds'"):
        parse_spec({**BASE, "tournament": {"template": ["x"], "judge_llm": ["y"]}})


def test_comparison_ids_are_deterministic_and_ordered() -> None:
    first = comparison_gen_id("e_aaa", "e_bbb", "compare-overall", "offline", 1)
    assert first == comparison_gen_id(" E_AAA ", "e_bbb", "Compare-Overall", "offline", 1)
    assert first == "p_mr05jg5toqn6z5rr"  # pinned: changing the scheme would orphan stored comparisons
    others = {comparison_gen_id("e_bbb", "e_aaa", "compare-overall", "offline", 1),
              comparison_gen_id("e_aaa", "e_bbb", "compare-novelty", "offline", 1),
              comparison_gen_id("e_aaa", "e_bbb", "compare-overall", "judge2", 1),
              comparison_gen_id("e_aaa", "e_bbb", "compare-overall", "offline", 2)}
    assert first not in others and len(others) == 4
    assert all(g.startswith("p_") for g in others)
    with pytest.raises(ValueError, match="two different essays"):
        comparison_gen_id("e_aaa", "e_aaa", "compare-overall", "offline")


# -- replaying rounds from the disk ----------------------------------------------------------------
def _parse_essays(root: Path) -> list[str]:
    """Give every essay of the demo a parsed output, as a finished essay stage would."""
    layer = GensDataLayer.from_root(root)
    essays = read_membership(root, "demo")["essay"]
    for gen_id in essays:
        layer.write_parsed("essay", gen_id, f"essay text of {gen_id}\n")
        layer.write_parsed_metadata("essay", gen_id, {"success": True})
    return essays


def _judge(root: Path, gen_ids: list[str], verdict_of: dict[str, str] | None = None) -> None:
    """Write a parsed verdict for each comparison: A wins unless ``verdict_of`` says otherwise."""
    layer = GensDataLayer.from_root(root)
    for gen_id in gen_ids:
        layer.write_parsed("comparison", gen_id, (verdict_of or {}).get(gen_id, "A"))
        layer.write_parsed_metadata("comparison", gen_id, {"success": True})


def _round(root: Path, number: int) -> list[str]:
    return [r.gen_id for r in load_membership(root, "demo").comparisons if r.round == number]


def test_build_decides_round_by_round_from_the_verdicts(tmp_path: Path) -> None:
    root = copy_demo(tmp_path / "data", tournament=True)
    first = build_cohort(root, "demo")
    assert first.counts["comparison"] == 0 and first.tournament is not None
    assert "waiting for 16 essay(s)" in first.tournament.describe()

    essays = _parse_essays(root)
    built = build_cohort(root, "demo")
    round_1 = _round(root, 1)
    assert built.counts["comparison"] == len(round_1) == 16  # 8 pairs x both orders
    assert built.tournament.rounds_decided == 1 and built.tournament.rounds_complete == 0
    rows = load_membership(root, "demo").comparisons
    # Both orders of each pair, every essay in exactly one pair, metadata with both parents.
    pairs = {frozenset(r.parent_gen_ids) for r in rows}
    assert len(pairs) == 8 and set().union(*pairs) == set(essays)
    assert {(r.parent_gen_ids[1], r.parent_gen_ids[0]) for r in rows} == {r.parent_gen_ids for r in rows}
    layer = GensDataLayer.from_root(root)
    meta = resolve_generation_metadata(layer, "comparison", rows[0].gen_id)
    assert meta.parent_gen_ids == rows[0].parent_gen_ids and meta.parent_gen_id == rows[0].parent_gen_ids[0]
    assert meta.round == 1 and meta.parent_stage == "essay"
    assert rows[0].gen_id == comparison_gen_id(*rows[0].parent_gen_ids, "compare-overall", "offline", 1)

    # An unchanged disk decides nothing new, and rebuilding rewrites nothing.
    membership_csv = (root / "cohorts" / "demo" / "membership.csv").read_bytes()
    assert build_cohort(root, "demo").files_changed == ()
    assert (root / "cohorts" / "demo" / "membership.csv").read_bytes() == membership_csv

    _judge(root, round_1[:-1])  # one verdict still pending: round 2 waits
    assert build_cohort(root, "demo").tournament.rounds_decided == 1
    _judge(root, round_1[-1:])
    state = build_cohort(root, "demo").tournament
    assert state.rounds_decided == 2 and state.rounds_complete == 1 and state.verdicts == 16
    round_2 = _round(root, 2)
    assert len(round_2) == 16
    met_in_1 = {frozenset(r.parent_gen_ids) for r in load_membership(root, "demo").comparisons if r.round == 1}
    met_in_2 = {frozenset(r.parent_gen_ids) for r in load_membership(root, "demo").comparisons if r.round == 2}
    assert not met_in_1 & met_in_2  # no rematch while one can be avoided

    _judge(root, round_2)
    _judge(root, _round_after(root, 2))
    final = build_cohort(root, "demo").tournament
    assert final.done and final.rounds_complete == 3 and final.verdicts == 48
    assert "3 of 3 rounds complete" in final.describe()


def _round_after(root: Path, number: int) -> list[str]:
    build_cohort(root, "demo")
    return _round(root, number + 1)


def test_pairings_are_a_pure_function_of_spec_seed_and_verdicts(tmp_path: Path) -> None:
    """Two data roots with the same verdicts decide the same rounds; other verdicts, other pairs."""
    roots = [copy_demo(tmp_path / name / "data", tournament=True) for name in ("one", "two", "three")]
    for root in roots:
        build_cohort(root, "demo")
        _parse_essays(root)
        build_cohort(root, "demo")
    first_rounds = [_round(root, 1) for root in roots]
    assert first_rounds[0] == first_rounds[1] == first_rounds[2]
    # "A" always wins: with both orders every essay is 1-1. In the third root the essay with the
    # smaller id wins both orders, so standings differ and round 2 pairs winners with winners.
    rows = load_membership(roots[2], "demo").comparisons
    smaller_wins = {r.gen_id: "A" if r.parent_gen_ids[0] < r.parent_gen_ids[1] else "B" for r in rows}
    for root, verdicts in zip(roots, ({}, {}, smaller_wins), strict=True):
        _judge(root, _round(root, 1), verdicts)
        build_cohort(root, "demo")
    assert _round(roots[0], 2) == _round(roots[1], 2)
    assert _round(roots[0], 2) != _round(roots[2], 2)

    # Another seed shuffles round 1 differently.
    spec = roots[2] / "cohorts" / "demo" / "spec" / "config.yaml"
    spec.write_text(spec.read_text().replace("  pool: all\n", "  pool: all\n  seed: 99\n"))
    reseeded = build_cohort(roots[2], "demo").membership.comparisons
    assert {r.gen_id for r in reseeded if r.round == 1} != set(first_rounds[0])


def test_failed_essays_are_left_out_and_failed_comparisons_give_no_verdict(tmp_path: Path) -> None:
    root = copy_demo(tmp_path / "data", tournament=True)
    build_cohort(root, "demo")
    essays = _parse_essays(root)
    layer = GensDataLayer.from_root(root)
    layer.clear_parsed("essay", essays[0])
    layer.write_parsed_metadata("essay", essays[0], {"success": False, "failed": True})
    state = build_cohort(root, "demo").tournament
    assert state.left_out == (essays[0],) and len(state.pool) == 15
    assert len(_round(root, 1)) == 7 * 2  # 15 essays: 7 pairs and a bye
    round_1 = _round(root, 1)
    _judge(root, round_1[1:])
    layer.write_raw_metadata("comparison", round_1[0], {"failed": True, "failure_reason": "provider"})
    state = build_cohort(root, "demo").tournament
    assert state.rounds_complete == 1 and state.failed == 1 and state.verdicts == 13


def test_tournament_problems_are_reported_before_anything_is_written(tmp_path: Path) -> None:
    root = copy_demo(tmp_path / "data", tournament=True)
    spec = root / "cohorts" / "demo" / "spec" / "config.yaml"
    spec.write_text(spec.read_text().replace("template: [compare-overall]", "template: [compare-nothing]")
                    .replace("judge_llm: [offline]", "judge_llm: [nobody]"))
    with pytest.raises(MembershipError) as info:
        build_cohort(root, "demo")
    message = str(info.value)
    assert "unknown comparison template(s): compare-nothing" in message and "compare-overall" in message
    assert "unknown judge model(s) in tournament.judge_llm: nobody" in message
    assert not (root / "cohorts" / "demo" / "membership.csv").exists()


def test_estimate_counts_the_whole_tournament(tmp_path: Path) -> None:
    root = copy_demo(tmp_path / "data", tournament=True)
    estimate = estimate_cohort(root, "demo")
    lines = {(line.stage, line.model_id): line for line in estimate.lines}
    assert estimate.generations["comparison"] == 48
    assert lines[("comparison", "offline")].calls == 48 and lines[("comparison", "offline")].remaining == 48
    assert any("3 Swiss rounds" in note for note in estimate.notes)
    assert "48 comparisons" in estimate.render()
    # Once round 1 is decided and judged, those calls are done.
    build_cohort(root, "demo")
    _parse_essays(root)
    build_cohort(root, "demo")
    layer = GensDataLayer.from_root(root)
    for gen_id in _round(root, 1):
        layer.write_raw("comparison", gen_id, "WINNER: A\n")
        layer.write_raw_metadata("comparison", gen_id, {"success": True, "provider": "offline"})
    after = {(line.stage, line.model_id): line for line in estimate_cohort(root, "demo").lines}
    assert after[("comparison", "offline")].calls == 48 and after[("comparison", "offline")].remaining == 32
    assert json.loads((root / "cohorts" / "demo" / "manifest.json").read_text())["counts"]["comparison"] == 16
