"""The tournament in ``daydream analyze`` (JSON key ``tournament``), the analysis files and the
report, on hand-made cohorts."""

from __future__ import annotations

import json
from itertools import permutations
from pathlib import Path

import pytest

from daydreaming_dagster.results.human_comparisons import HumanComparison, append_comparison

from ..results.conftest import COHORT, Store, build_store
from ..results.test_comparisons import write_comparison, write_membership
from ..support.cli import run_cli

STRENGTH_KEYS = {"essay_gen_id", "strength", "ci_low", "ci_high", "p_top_1", "p_top_5", "wins", "losses", "ties"}


def _add_tournament(root: Path, cohort: str, essays: list[str], *, human: bool = False) -> list[str]:
    """Every ordered pair judged by two models (the first essay in ``essays`` is the best);
    optionally one human preference per pair. Returns the comparison ids."""
    rank = {e: i for i, e in enumerate(essays)}
    ids = []
    for judge in ("m1", "m2"):
        for n, (a, b) in enumerate(permutations(essays, 2)):
            gen_id = f"p_{judge}_{n}"
            verdict = "A" if rank[a] < rank[b] else "B"
            if judge == "m2" and n == 0:
                verdict = "tie"
            write_comparison(root, gen_id, a, b, judge=judge, parsed=verdict, round_number=1)
            ids.append(gen_id)
    write_comparison(root, "p_failed", essays[0], essays[1], judge="m1", parsed=None)
    ids.append("p_failed")
    if human:  # through the explorer's own store
        for a, b in permutations(essays, 2):
            append_comparison(root, cohort, HumanComparison(a, b, "A" if rank[a] < rank[b] else "B", "ada"))
    return ids


def _register(monkeypatch: pytest.MonkeyPatch, root: Path, cohort: str, ids: list[str]) -> None:
    """List the comparisons as the cohort's members (rows of its membership.csv)."""
    membership = root / "cohorts" / cohort / "membership.csv"
    membership.write_text(membership.read_text() + "".join(f"comparison,{g}\n" for g in ids))


@pytest.fixture
def store(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    store = build_store(data_root)
    ids = _add_tournament(data_root, COHORT, [store.e_copy, store.e_a, store.e_b], human=True)
    _register(monkeypatch, data_root, COHORT, ids)
    return store


def test_analyze_json_has_the_tournament(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["analyze", COHORT, "--data-root", str(store.root), "--bootstrap", "40", "--json"], capsys)
    assert code == 0, err
    tournament = json.loads(out)["tournament"]
    assert tournament["pooled_judges"] == ["m1", "m2"] and tournament["include_humans"] is False
    assert tournament["n_comparisons"] == 12 and tournament["skipped"] == 1
    strengths = tournament["strengths"]
    assert [s["essay_gen_id"] for s in strengths] == [store.e_copy, store.e_a, store.e_b]
    assert all(STRENGTH_KEYS <= set(s) for s in strengths)
    assert (strengths[0]["wins"], strengths[0]["losses"], strengths[0]["ties"]) == (7, 0, 1)
    assert set(tournament["position_bias"]) >= {"estimate", "ci_low", "ci_high", "p_first_wins"}
    assert tournament["consistency"]["n_pairs"] == 6 and tournament["consistency"]["n_agree"] == 5
    # Two of the three essays have scores: tau without an interval.
    assert tournament["tau_with_scores"]["n"] == 2 and tournament["tau_with_scores"]["ci_low"] is None
    judges = {j["judge"]: j for j in tournament["judges"]}
    assert set(judges) == {"m1", "m2", "human:ada"} and judges["human:ada"]["human"] is True
    assert judges["m1"]["consistency"] == {**judges["m1"]["consistency"], "n_pairs": 3, "n_agree": 3}
    files = store.root / "results" / COHORT / "analysis"
    assert {"tournament_strengths.csv", "tournament_judges.csv"} <= {p.name for p in files.iterdir()}

    code, out, err = run_cli(["analyze", COHORT, "--data-root", str(store.root), "--bootstrap", "20", "--json",
                              "--include-humans"], capsys)
    assert code == 0, err
    assert json.loads(out)["tournament"]["pooled_judges"] == ["human:ada", "m1", "m2"]
    code, out, _ = run_cli(["analyze", COHORT, "--data-root", str(store.root), "--bootstrap", "20"], capsys)
    assert "pairwise tournament: 12 verdicts by m1, m2" in out and "judge human:ada" in out


def test_a_cohort_without_comparisons_has_a_null_tournament(data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build_store(data_root)
    code, out, err = run_cli(["analyze", COHORT, "--data-root", str(data_root), "--bootstrap", "20", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["tournament"] is None


def test_a_tournament_without_evaluations_is_analysed(data_root: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    essays = ["e_one", "e_two", "e_three", "e_four"]
    write_membership(data_root, "t_only", [("essay", e) for e in essays])
    ids = _add_tournament(data_root, "t_only", essays)
    _register(monkeypatch, data_root, "t_only", ids)
    code, out, err = run_cli(["analyze", "t_only", "--data-root", str(data_root), "--bootstrap", "20", "--json"],
                             capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["n_scores"] == 0 and data["tournament"]["tau_with_scores"] is None
    assert [s["essay_gen_id"] for s in data["tournament"]["strengths"]] == essays


def test_the_report_has_a_tournament_section(store: Store) -> None:
    from daydreaming_dagster.reporting import write_cohort_report

    report = write_cohort_report(store.root, COHORT, n_boot=20)
    text = report.report_md.read_text()
    assert "## Pairwise tournament" in text and "Position bias" in text and "human:ada" in text
    assert "Pairwise tournament" in report.report_html.read_text()
    assert report.analysis.tournament is not None
