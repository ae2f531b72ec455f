"""Every spec mistake raises SpecError naming the spec file, the rule and the offending value."""

from __future__ import annotations

from pathlib import Path

import pytest

from daydreaming_dagster.cohorts import compile_design
from daydreaming_dagster.errors import DaydreamError, SpecError

BASE_AXES = """
axes:
  draft_template: [d1, d2]
  essay_template: [e1, e2]
  draft_llm: [m1, m2]
"""

CASES: list[tuple[str, str, dict[str, str], list[str]]] = [
    # (id, spec body appended to BASE_AXES or full text, include files, expected fragments)
    ("top-level-typo", BASE_AXES + "rule: {}\n", {}, ["top level", "unknown key(s) rule"]),
    ("not-a-mapping", "- just\n- a list\n", {}, ["top level", "expected a mapping"]),
    ("axis-not-list", "axes:\n  draft_template: d1\n", {}, ["axes.draft_template", "expected a list or '@file:path'", "'d1'"]),
    ("axis-empty", "axes:\n  draft_template: []\n", {}, ["axes.draft_template", "the list is empty"]),
    ("axis-bool", "axes:\n  draft_template: [yes]\n", {}, ["axes.draft_template", "True", "quote it"]),
    ("axis-float", "axes:\n  draft_template: [1.5]\n", {}, ["axes.draft_template", "1.5"]),
    ("axis-nested", "axes:\n  draft_template: [[a, b]]\n", {}, ["axes.draft_template", "expected a single value", "['a', 'b']"]),
    ("axis-blank", "axes:\n  draft_template: ['  ']\n", {}, ["axes.draft_template", "empty value"]),
    ("replicate-not-int", "axes:\n  draft_template_replicate: [one]\n", {}, ["axes.draft_template_replicate", "integers >= 1", "'one'"]),
    ("replicate-zero", "axes:\n  draft_template_replicate: [0]\n", {}, ["axes.draft_template_replicate", "integers >= 1", "0"]),
    ("replicates-count", "axes:\n  a: [x]\nreplicates:\n  a: 0\n", {}, ["replicates.a", "count must be an integer >= 1", "0"]),
    ("replicates-clash", "axes:\n  a_replicate: [1]\nreplicates:\n  a: 2\n", {}, ["replicates.a", "'a_replicate' is also declared"]),
    ("file-missing", "axes:\n  draft_template: '@file:nope.csv'\n", {}, ["axes.draft_template", "'@file:nope.csv'", "file not found", "nope.csv"]),
    ("file-bad-ext", "axes:\n  draft_template: '@file:x.xlsx'\n", {"x.xlsx": "x"}, ["axes.draft_template", "unsupported include type '.xlsx'"]),
    ("csv-empty-cell", "axes:\n  draft_template: '@file:t.csv'\n", {"t.csv": "id\n \nd1\n"}, ["axes.draft_template", "t.csv line 2 is empty"]),
    ("csv-inner-blank", "rules:\n  tuples:\n    t: {axes: [a, b], items: '@file:t.csv'}\naxes: {}\n", {"t.csv": "a,b\nx,y\n\nz,w\n"}, ["rules.tuples.t.items", "t.csv line 3 is empty"]),
    ("csv-missing-value", "rules:\n  tuples:\n    t: {axes: [a, b], items: '@file:t.csv'}\n", {"t.csv": "a,b\nx,\n"}, ["rules.tuples.t.items", "t.csv line 2: column 'b' is empty"]),
    ("csv-ragged", "rules:\n  tuples:\n    t: {axes: [a, b], items: '@file:t.csv'}\n", {"t.csv": "a,b\nx,y,z\n"}, ["t.csv line 2: 3 cells but the header has 2 columns"]),
    ("csv-no-rows", "axes:\n  draft_template: '@file:t.csv'\n", {"t.csv": "id\n"}, ["axes.draft_template", "t.csv has a header but no data rows"]),
    ("csv-empty-file", "axes:\n  draft_template: '@file:t.csv'\n", {"t.csv": ""}, ["axes.draft_template", "t.csv is empty"]),
    ("csv-dup-header", "rules:\n  tuples:\n    t: {axes: [a, b], items: '@file:t.csv'}\n", {"t.csv": "a,a\nx,y\n"}, ["duplicate column names"]),
    ("axis-multi-column", "axes:\n  draft_template: '@file:t.csv'\n", {"t.csv": "a,b\nx,y\n"}, ["axes.draft_template", "has 2 columns (a,b)", "takes one column"]),
    ("yaml-include-not-list", "axes:\n  draft_template: '@file:t.yaml'\n", {"t.yaml": "a: 1\n"}, ["axes.draft_template", "t.yaml must hold a non-empty list"]),
    ("unknown-rule-section", BASE_AXES + "rules:\n  pair: {}\n", {}, ["rules", "unknown key(s) pair", "pairs"]),
    ("subset-unknown-axis", BASE_AXES + "rules:\n  subsets:\n    essay_llm: [m1]\n", {}, ["rules.subsets.essay_llm", "unknown axis 'essay_llm'"]),
    ("subset-unknown-level", BASE_AXES + "rules:\n  subsets:\n    draft_template: [d1, d9]\n", {}, ["rules.subsets.draft_template", "d9", "not levels of axis 'draft_template'"]),
    ("tie-one-axis", BASE_AXES + "rules:\n  ties:\n    t: [draft_template]\n", {}, ["rules.ties.t", "at least 2 axes"]),
    ("tie-empty", BASE_AXES + "rules:\n  ties:\n    t: [draft_template, essay_template]\n", {}, ["rules.ties.t", "share no level", "draft_template: d1, d2", "essay_template: e1, e2"]),
    ("tie-unknown", BASE_AXES + "rules:\n  ties:\n    t: [draft_llm, essay_llm]\n", {}, ["rules.ties.t", "unknown axis 'essay_llm'"]),
    ("tie-twice", "axes:\n  a: [x]\n  b: [x]\n  c: [x]\nrules:\n  ties:\n    t1: [a, b]\n    t2: [b, c]\n", {}, ["rules.ties.t2", "'b' is already tied by rules.ties.t1"]),
    ("tie-key", BASE_AXES + "rules:\n  ties:\n    t: {axes: [a, b], to: a}\n", {}, ["rules.ties.t", "unknown key(s) to"]),
    ("pair-missing-allowed", BASE_AXES + "rules:\n  pairs:\n    p: {left: draft_template, right: essay_template}\n", {}, ["rules.pairs.p", "missing 'allowed'"]),
    ("pair-same-sides", BASE_AXES + "rules:\n  pairs:\n    p: {left: draft_template, right: draft_template, allowed: [[d1, d1]]}\n", {}, ["rules.pairs.p", "the same axis 'draft_template'"]),
    ("pair-bad-balance", BASE_AXES + "rules:\n  pairs:\n    p: {left: draft_template, right: essay_template, allowed: [[d1, e1]], balance: middle}\n", {}, ["rules.pairs.p", "balance must be one of left, right, both", "'middle'"]),
    ("pair-bad-value", BASE_AXES + "rules:\n  pairs:\n    p: {left: draft_template, right: essay_template, allowed: [[d1, e9]]}\n", {}, ["rules.pairs.p", "'e9'", "not a level of 'essay_template'"]),
    ("pair-bad-arity", BASE_AXES + "rules:\n  pairs:\n    p: {left: draft_template, right: essay_template, allowed: [[d1, e1, x]]}\n", {}, ["rules.pairs.p", "entry [", "'x'", "does not match the axes"]),
    ("pair-unknown-axis", BASE_AXES + "rules:\n  pairs:\n    p: {left: draft_template, right: essay_llm, allowed: [[d1, m1]]}\n", {}, ["rules.pairs.p", "unknown axis 'essay_llm'"]),
    ("pair-filtered-empty", BASE_AXES + "rules:\n  subsets:\n    draft_template: [d2]\n  pairs:\n    p: {left: draft_template, right: essay_template, allowed: [[d1, e1]]}\n", {}, ["rules.pairs.p", "no entry survives"]),
    ("pair-unbalanced", BASE_AXES + "rules:\n  pairs:\n    p: {left: draft_template, right: essay_template, allowed: [[d1, e1], [d1, e2], [d2, e1]], balance: left}\n", {}, ["rules.pairs.p", "balance=left", "'d1': 2, 'd2': 1"]),
    ("pair-file-columns", BASE_AXES + "rules:\n  pairs:\n    p: {left: draft_template, right: essay_template, allowed: '@file:p.csv'}\n", {"p.csv": "a,b,c\nd1,e1,x\n"}, ["rules.pairs.p", "columns a,b,c", "need 2 columns"]),
    ("axis-coupled-twice", BASE_AXES + "rules:\n  pairs:\n    p: {left: draft_template, right: essay_template, allowed: [[d1, e1]]}\n  tuples:\n    t: {axes: [draft_template, draft_llm], items: [[d1, m1]]}\n", {}, ["rules.tuples.t", "'draft_template' is already coupled by rules.pairs.p"]),
    ("name-clash", BASE_AXES + "rules:\n  pairs:\n    draft_llm: {left: draft_template, right: essay_template, allowed: [[d1, e1]]}\n", {}, ["rules.pairs.draft_llm", "name 'draft_llm' is already used"]),
    ("cycle", "axes:\n  a: [x]\n  b: [y]\nrules:\n  pairs:\n    p: {left: a, right: t, allowed: [[x, y]]}\n  tuples:\n    t: {axes: [p, b], items: [[x, y]]}\n", {}, ["cycle", "rules.pairs.p", "rules.tuples.t"]),
    ("tuple-missing-items", "rules:\n  tuples:\n    t: {axes: [a, b]}\n", {}, ["rules.tuples.t", "missing 'items'"]),
    ("tuple-bad-arity", "rules:\n  tuples:\n    t: {axes: [a, b], items: [[x]]}\n", {}, ["rules.tuples.t", "does not match the axes ['a', 'b']"]),
    ("tuple-outside-declared", BASE_AXES + "rules:\n  tuples:\n    t: {axes: [draft_template, evaluation_llm], items: [[d7, j1]]}\n", {}, ["rules.tuples.t", "'d7'", "not a level of 'draft_template'"]),
    ("tuple-dup-axis", "rules:\n  tuples:\n    t: {axes: [a, a], items: [[x, x]]}\n", {}, ["rules.tuples.t", "axis listed twice"]),
    ("field-order-unknown", BASE_AXES + "output:\n  field_order: [draft_template, essay_llm]\n", {}, ["output.field_order", "unknown column(s) essay_llm"]),
    ("field-order-dup", BASE_AXES + "output:\n  field_order: [draft_llm, draft_llm]\n", {}, ["output.field_order", "listed twice: draft_llm"]),
    ("output-key", BASE_AXES + "output:\n  expand_pairs: false\n", {}, ["output", "unknown key(s) expand_pairs"]),
    ("seed-not-int", BASE_AXES + "output:\n  seed: abc\n", {}, ["output.seed", "'abc'"]),
    ("combos-level", "combos:\n  c: {concepts: [a, b], k: 2, level: chapter}\n", {}, ["combos.c", "level must be one of", "'chapter'"]),
    ("combos-k-too-big", "combos:\n  c: {concepts: [a, b], k: 3, level: sentence}\n", {}, ["combos.c.k", "between 1 and 2", "3"]),
    ("combos-k-and-sets", "combos:\n  c: {concepts: [a], k: 1, sets: [[a]], level: sentence}\n", {}, ["combos.c", "either 'k'", "or 'sets'"]),
    ("combos-kmax", "combos:\n  c: {concepts: [a, b, c], k: 2, k_max: 1, level: sentence}\n", {}, ["combos.c.k_max", ">= 2", "1"]),
    ("no-axes", "description: nothing\n", {}, ["axes", "defines no axes"]),
    ("yaml-syntax", "axes: [unclosed\n", {}, ["not valid YAML"]),
]


@pytest.mark.parametrize(("spec_text", "files", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_spec_errors_name_file_rule_and_value(write_spec, spec_text: str, files: dict[str, str], expected: list[str]) -> None:
    path = write_spec(spec_text, files=files)
    with pytest.raises(SpecError) as info:
        compile_design(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert isinstance(info.value, DaydreamError)


def test_missing_spec_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="spec file not found"):
        compile_design(tmp_path / "absent.yaml")
    with pytest.raises(SpecError, match=r"no spec file; expected one of config.yaml, config.yml, config.json, config.toml"):
        compile_design(tmp_path)


def test_bad_json_and_toml_name_the_file(write_spec) -> None:
    json_path = write_spec('{"axes": ', name="config.json")
    with pytest.raises(SpecError, match=rf"{json_path}: not valid JSON"):
        compile_design(json_path)
    toml_path = write_spec("axes = [", name="config.toml")
    with pytest.raises(SpecError, match=rf"{toml_path}: not valid TOML"):
        compile_design(toml_path)
    other = write_spec("axes: {}", name="config.ini")
    with pytest.raises(SpecError, match="unsupported spec format '.ini'"):
        compile_design(other)
