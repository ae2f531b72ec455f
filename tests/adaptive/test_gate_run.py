"""The essay gate through ``app.run`` on a copy of the demo (offline provider, real Dagster runs)."""

from __future__ import annotations

import json
from pathlib import Path

from daydreaming_dagster import app
from daydreaming_dagster.adaptive import cohort_selection, read_rounds
from daydreaming_dagster.cohorts import load_membership
from daydreaming_dagster.data_layer import GensDataLayer

GATE = """
gates:
  essay:
    templates: [essay-expand]
    screen: {essay_template: essay-copy, evaluation: [eval-overall], evaluation_llm: [offline]}
    keep: {top: 25%, per: draft_template}
"""


def _with_gate(root: Path) -> None:
    spec = root / "cohorts" / "demo" / "spec" / "config.yaml"
    spec.write_text(spec.read_text() + GATE)


def test_gate_writes_expensive_essays_only_for_kept_drafts(demo_root: Path) -> None:
    _with_gate(demo_root)
    outcome = app.run(str(demo_root), "demo", report=False)
    assert not outcome.failed
    membership = load_membership(demo_root, "demo")
    layer = GensDataLayer.from_root(demo_root)
    selection = outcome.selection
    assert selection is not None and selection.gate is not None and selection.settled
    kept = {d.draft_gen_id for d in selection.gate if d.passed}
    assert len(kept) == 2  # top 25% of 4 drafts, per draft template (2 templates)
    for essay in membership.essays:
        written = layer.raw_exists("essay", essay.gen_id)
        if essay.template_id == "essay-expand":
            assert written == (essay.parent_gen_id in kept)
            if not written:
                assert selection.withheld[essay.gen_id].state == "gated"
        else:
            assert written
    # The kept drafts are the best screened of their template.
    for decision in selection.gate:
        peers = [d for d in selection.gate if d.group == decision.group]
        if decision.passed:
            assert all(decision.screen_score >= p.screen_score for p in peers)
        assert decision.scores and all(s.evaluator == "eval-overall/offline" for s in decision.scores)
    evaluations = [r for r in membership.evaluations if layer.raw_exists("evaluation", r.gen_id)]
    assert len(evaluations) == 16 + 2 * 2  # every copy essay's 2 evaluations + 2 kept expand essays x 2
    record = read_rounds(str(demo_root), "demo")
    assert record is not None and sum(d["passed"] for d in record["gate"]) == 2
    assert json.loads(Path(outcome.rounds_path).read_text()) == record

    # Status, the report's tables and the explorer say gated (with the deciding screen), never failed/missing.
    status_lines = app.spending_status(str(demo_root), "demo")
    assert any("2 of 8 drafts kept; 6 essays and 12 evaluations gated" in line for line in status_lines)
    assert sum(" gated: screen score " in line for line in status_lines) == 6
    from daydreaming_dagster.results.cohort import (
        generations_table,
        load_cohort_records,
        stage_summary,
    )
    from daydreaming_dagster.web.data import build_cohort_view, essay_detail

    summary = {r["stage"]: r for r in stage_summary(generations_table(load_cohort_records(demo_root, "demo")))
               .iter_rows(named=True)}
    assert summary["essay"]["gated"] == 6 and summary["essay"]["missing"] == 0
    assert summary["evaluation"]["gated"] == 12 and summary["evaluation"]["missing"] == 0
    view = build_cohort_view(demo_root, "demo")
    gated = next(e for e in membership.essays if selection.withheld.get(e.gen_id))
    detail = essay_detail(view, gated.gen_id)
    assert detail.essay.status == "gated" and detail.essay.error is None
    assert "screen score" in detail.essay.note and "gated" in view.summary.status

    # A re-run decides the same and calls nothing.
    again = app.run(str(demo_root), "demo", report=False)
    assert not again.plan.has_work and not again.round_plans
    assert cohort_selection(demo_root, "demo").gate == selection.gate


def test_plain_and_spec_less_cohorts_have_no_spending(demo_root: Path) -> None:
    from daydreaming_dagster.adaptive import withheld_members

    app.build(str(demo_root), "demo")
    assert app.spending_status(str(demo_root), "demo") == []
    assert withheld_members(demo_root, "demo") == frozenset()
    spec = demo_root / "cohorts" / "demo" / "spec" / "config.yaml"
    spec.unlink()  # built from a spec since removed: status and tagged runs still work
    assert app.spending_status(str(demo_root), "demo") == []
    assert withheld_members(demo_root, "demo") == frozenset()
    assert withheld_members(demo_root, "no such cohort") == frozenset()
