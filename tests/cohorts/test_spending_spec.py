"""The spec's ``adaptive`` and ``gates`` sections: parsed into typed rules, every mistake a
SpecError naming the field, levels the design lacks caught at build, ids unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from daydreaming_dagster.cohorts import build_cohort, compile_cohort, load_spec, parse_spec
from daydreaming_dagster.cohorts.spending import AdaptiveEvaluation, EssayGate
from daydreaming_dagster.errors import MembershipError, SpecError

ADAPTIVE = {"evaluation": {"goal": {"top": 5, "confidence": 0.9}, "first": 2, "batch": 64}}
GATE = {"essay": {"templates": ["essay-expand"],
                  "screen": {"essay_template": "essay-copy", "evaluation": ["eval-overall"],
                             "evaluation_llm": ["gpt-4o-mini"]},
                  "keep": {"top": "25%", "per": "draft_template"}}}


def test_sections_parse_into_typed_rules() -> None:
    spec = parse_spec({"axes": {"a": ["x"]}, "adaptive": ADAPTIVE, "gates": GATE, "output": {"seed": 7}})
    assert spec.adaptive == AdaptiveEvaluation(top=5, confidence=0.9, first=2, batch=64, seed=7)
    gate = spec.essay_gate
    assert gate == EssayGate(("essay-expand",), "essay-copy", ("eval-overall",), ("gpt-4o-mini",), 0.25, None,
                             ("draft_template",))
    assert [gate.kept_in(n) for n in (0, 1, 4, 5, 8)] == [0, 1, 1, 2, 2]
    count = parse_spec({"gates": {"essay": {**GATE["essay"], "keep": {"top": 3}}}}).essay_gate
    assert count is not None and count.kept_in(10) == 3 and count.kept_in(2) == 2 and count.per == ()
    assert parse_spec({"axes": {"a": ["x"]}}).adaptive is None


@pytest.mark.parametrize(("payload", "fragments"), [
    ({"adaptive": {"evaluation": {"goal": {"top": 5}, "first": 2, "batch": 4}}},
     ["adaptive.evaluation.goal", "'confidence'"]),
    ({"adaptive": {"evaluation": {"goal": {"top": 5, "confidence": 1.5}, "first": 2, "batch": 4}}},
     ["adaptive.evaluation.goal.confidence", "1.5"]),
    ({"adaptive": {"evaluation": {"goal": {"top": 0, "confidence": 0.9}, "first": 2, "batch": 4}}},
     ["adaptive.evaluation.goal.top", "integer >= 1", "0"]),
    ({"adaptive": {"evaluation": {"goal": {"top": 5, "confidence": 0.9}, "first": 2}}},
     ["adaptive.evaluation", "missing 'batch'"]),
    ({"adaptive": {"evaluation": {"goal": {"top": 5, "confidence": 0.9}, "first": 2, "batch": 4, "rounds": 3}}},
     ["adaptive.evaluation", "unknown key(s) rounds"]),
    ({"adaptive": {"essay": {}}}, ["adaptive", "unknown key(s) essay"]),
    ({"gates": {"essay": {**GATE["essay"], "keep": {"top": "250%"}}}}, ["gates.essay.keep.top", "'250%'"]),
    ({"gates": {"essay": {**GATE["essay"], "keep": {"top": "many"}}}}, ["gates.essay.keep.top", "'many'"]),
    ({"gates": {"essay": {**GATE["essay"], "keep": {"top": 2, "per": "essay_llm"}}}},
     ["gates.essay.keep.per", "essay_llm", "draft_template"]),
    ({"gates": {"essay": {**GATE["essay"], "templates": ["essay-copy"]}}},
     ["gates.essay.screen.essay_template", "also gated"]),
    ({"gates": {"essay": {"templates": ["essay-expand"], "keep": {"top": 1}}}}, ["gates.essay", "missing 'screen'"]),
])
def test_mistakes_name_the_field(payload: dict, fragments: list[str]) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({"axes": {"a": ["x"]}, **payload}, source="cohorts/x/spec/config.yaml")
    message = str(caught.value)
    assert message.startswith("cohorts/x/spec/config.yaml: ")
    for fragment in fragments:
        assert fragment in message, message


def _append(root: Path, text: str) -> None:
    spec = root / "cohorts" / "demo" / "spec" / "config.yaml"
    spec.write_text(spec.read_text() + text)


def test_levels_the_design_lacks_are_build_problems(demo_root: Path) -> None:
    _append(demo_root, """
gates:
  essay:
    templates: [essay-fancy]
    screen: {essay_template: essay-copy, evaluation: [eval-overall], evaluation_llm: [gpt-4o-mini]}
    keep: {top: 25%}
adaptive:
  evaluation:
    goal: {top: 16, confidence: 0.9}
    first: 1
    batch: 4
""")
    with pytest.raises(MembershipError) as caught:
        compile_cohort(demo_root, "demo")
    message = str(caught.value)
    assert "gates.essay.templates: essay-fancy: no such essay template in the design (it has: essay-copy, " in message
    assert ("gates.essay.screen.evaluation_llm: gpt-4o-mini: no such evaluation model of the screen essays in the "
            "design (it has: offline)") in message
    assert "adaptive.evaluation.goal.top: 16 is not smaller than the number of essays (16)" in message


def test_spending_sections_do_not_change_ids(demo_root: Path) -> None:
    before = build_cohort(demo_root, "demo").membership
    _append(demo_root, "adaptive:\n  evaluation:\n    goal: {top: 3, confidence: 0.9}\n    first: 1\n    batch: 4\n")
    after = build_cohort(demo_root, "demo")
    assert after.membership == before
    assert load_spec(after.spec_path).adaptive is not None
