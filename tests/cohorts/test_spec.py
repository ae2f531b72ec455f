"""The spec DSL: each rule alone and combined, includes, formats and output order."""

from __future__ import annotations

from collections import Counter
from itertools import product
from pathlib import Path

import pytest

from daydreaming_dagster.cohorts import compile_design, load_spec, parse_spec
from daydreaming_dagster.cohorts.spec import compile_spec
from daydreaming_dagster.combos import combo_id_for


def as_set(design, fields=None) -> set[tuple]:
    fields = fields or design.fields
    return {tuple(row[f] for f in fields) for row in design}


def test_plain_axes_give_the_full_product_in_axis_order(write_spec) -> None:
    design = compile_design(
        write_spec(
            """
            axes:
              combo_id: [c1, c2]
              draft_template: [d1, d2, d1]
              draft_llm: [m1]
            """
        )
    )
    assert design.fields == ("combo_id", "draft_template", "draft_llm")
    # Duplicate levels are dropped; rows follow the product order of the declared axes.
    assert [tuple(r.values()) for r in design] == [
        ("c1", "d1", "m1"),
        ("c1", "d2", "m1"),
        ("c2", "d1", "m1"),
        ("c2", "d2", "m1"),
    ]


def test_subsets_filter_levels(write_spec) -> None:
    design = compile_design(
        write_spec(
            """
            axes:
              draft_template: [d1, d2, d3]
              draft_llm: [m1, m2]
            rules:
              subsets:
                draft_template: [d3, d1]
            """
        )
    )
    assert as_set(design) == {("d1", "m1"), ("d1", "m2"), ("d3", "m1"), ("d3", "m2")}


def test_ties_intersect_and_force_equal_values(write_spec) -> None:
    design = compile_design(
        write_spec(
            """
            axes:
              draft_llm: [m1, m2, m3]
              essay_llm: [m3, m2, m4]
              essay_template: [e1]
            rules:
              ties:
                draft_llm: {axes: [draft_llm, essay_llm]}
            """
        )
    )
    assert design.fields == ("draft_llm", "essay_llm", "essay_template")
    assert [(r["draft_llm"], r["essay_llm"]) for r in design] == [("m2", "m2"), ("m3", "m3")]


def test_tie_with_a_new_name_drops_that_name_and_accepts_the_list_form(write_spec) -> None:
    design = compile_design(
        write_spec(
            """
            axes:
              draft_llm: [m1, m2]
              essay_llm: [m1, m2]
              evaluation_llm: [m2, m1]
            rules:
              ties:
                one_model: [draft_llm, essay_llm, evaluation_llm]
            """
        )
    )
    assert design.fields == ("draft_llm", "essay_llm", "evaluation_llm")
    assert as_set(design) == {("m1", "m1", "m1"), ("m2", "m2", "m2")}


def test_pairs_replace_two_axes_by_the_allowed_pairs(write_spec) -> None:
    design = compile_design(
        write_spec(
            """
            axes:
              draft_template: [d1, d2]
              essay_template: [e1, e2, e3]
              draft_llm: [m1, m2]
            rules:
              pairs:
                draft_essay:
                  left: draft_template
                  right: essay_template
                  allowed: [[d1, e1], [d1, e2], [d2, e3], [d1, e1]]
            """
        )
    )
    assert "draft_essay" not in design.fields
    assert as_set(design, ("draft_template", "essay_template", "draft_llm")) == {
        (d, e, m) for (d, e) in [("d1", "e1"), ("d1", "e2"), ("d2", "e3")] for m in ("m1", "m2")
    }
    assert len(design) == 6


def test_pair_balance(write_spec) -> None:
    base = """
        axes:
          draft_template: [d1, d2]
          essay_template: [e1, e2]
        rules:
          pairs:
            p:
              left: draft_template
              right: essay_template
              allowed: {allowed}
              balance: {balance}
        """
    balanced = "[[d1, e1], [d1, e2], [d2, e1], [d2, e2]]"
    for balance in ("left", "right", "both"):
        assert len(compile_design(write_spec(base.format(allowed=balanced, balance=balance)))) == 4
    # d1 has two partners, d2 one: left-unbalanced; each e has... e1: 2, e2: 1 -> right-unbalanced too.
    skewed = "[[d1, e1], [d1, e2], [d2, e1]]"
    for balance in ("left", "right", "both"):
        with pytest.raises(Exception, match="unbalanced"):
            compile_design(write_spec(base.format(allowed=skewed, balance=balance)))
    # Right-balanced but not left-balanced.
    right_only = "[[d1, e1], [d1, e2]]"
    assert len(compile_design(write_spec(base.format(allowed=right_only, balance="right")))) == 2
    with pytest.raises(Exception, match=r"balance=left but the left side 'draft_template' is unbalanced \(pairs per level: 'd1': 2, 'd2': 1\)"):
        compile_design(write_spec(base.format(allowed=skewed, balance="left")))


def test_tuples_couple_n_axes(write_spec) -> None:
    design = compile_design(
        write_spec(
            """
            axes:
              combo_id: [c1, c2]
              evaluation_template: [v1, v2]
              evaluation_llm: [m1, m2]
            rules:
              tuples:
                evaluator:
                  axes: [evaluation_template, evaluation_llm]
                  items: [[v1, m2], [v2, m1]]
            """
        )
    )
    assert design.fields == ("combo_id", "evaluation_template", "evaluation_llm")
    assert as_set(design) == {(c, v, m) for c in ("c1", "c2") for v, m in [("v1", "m2"), ("v2", "m1")]}


def test_axes_defined_only_by_tuples_need_no_declaration(write_spec) -> None:
    design = compile_design(
        write_spec(
            """
            axes:
              combo_id: [c1]
              evaluation_llm: null
            rules:
              tuples:
                evaluator:
                  axes: [evaluation_template, evaluation_llm]
                  items: [[v1, m1], [v1, m2], [v2, m2]]
              subsets:
                evaluation_llm: [m2]
            """
        )
    )
    # Subsets apply to tuple-defined axes too (even when written after `tuples`).
    assert as_set(design) == {("c1", "v1", "m2"), ("c1", "v2", "m2")}


def test_pair_side_may_be_a_tuple_axis_nested_or_flat(write_spec) -> None:
    design = compile_design(
        write_spec(
            """
            axes:
              draft_template: [d1, d2]
              essay_template: [e1, e2]
              essay_llm: [m1, m2]
            rules:
              tuples:
                essay_bundle:
                  axes: [essay_template, essay_llm]
                  items: [[e1, m1], [e2, m2]]
              pairs:
                draft_bundle:
                  left: draft_template
                  right: essay_bundle
                  allowed:
                    - [d1, [e1, m1]]
                    - [d2, e2, m2]
            """
        )
    )
    assert design.fields == ("draft_template", "essay_template", "essay_llm")
    assert as_set(design) == {("d1", "e1", "m1"), ("d2", "e2", "m2")}


def test_pair_referring_to_a_tied_axis_fills_every_tied_column(write_spec) -> None:
    design = compile_design(
        write_spec(
            """
            axes:
              draft_llm: [m1, m2]
              essay_llm: [m1, m2]
              evaluation_llm: [j1, j2]
            rules:
              ties:
                draft_llm: {axes: [draft_llm, essay_llm]}
              pairs:
                judge:
                  left: essay_llm
                  right: evaluation_llm
                  allowed: [[m1, j2], [m2, j1]]
            """
        )
    )
    assert as_set(design, ("draft_llm", "essay_llm", "evaluation_llm")) == {("m1", "m1", "j2"), ("m2", "m2", "j1")}


def test_subsets_drop_pairs_and_tuple_items_that_name_removed_levels(write_spec) -> None:
    design = compile_design(
        write_spec(
            """
            axes:
              draft_template: [d1, d2]
              essay_template: [e1, e2]
            rules:
              subsets:
                draft_template: [d2]
              pairs:
                p: {left: draft_template, right: essay_template, allowed: [[d1, e1], [d2, e2]], balance: both}
            """
        )
    )
    assert as_set(design) == {("d2", "e2")}


def test_all_rules_combined_with_replicates_and_field_order(write_spec) -> None:
    spec = write_spec(
        """
        axes:
          combo_id: [c1, c2, c3]
          draft_template: [d1, d2, d3]
          draft_llm: [m1, m2, m3]
          essay_template: [e1, e2]
          essay_llm: [m1, m2]
          evaluation_template: [v1, v2]
          draft_template_replicate: [1, 2]
        rules:
          subsets:
            combo_id: [c1, c3]
            draft_template: [d1, d2]
          ties:
            draft_llm: {axes: [draft_llm, essay_llm]}
          pairs:
            draft_essay:
              left: draft_template
              right: essay_template
              allowed: [[d1, e1], [d2, e2], [d3, e1]]
              balance: left
          tuples:
            evaluator:
              axes: [evaluation_template, evaluation_llm]
              items: [[v1, j1], [v2, j2]]
        output:
          field_order: [evaluation_llm, combo_id]
        """
    )
    design = compile_design(spec)
    assert design.fields[:2] == ("evaluation_llm", "combo_id")
    assert set(design.fields) == {
        "combo_id", "draft_template", "draft_llm", "essay_template", "essay_llm",
        "evaluation_template", "evaluation_llm", "draft_template_replicate",
    }
    expected = {
        (c, d, m, e, m, v, j, rep)
        for c in ("c1", "c3")
        for d, e in [("d1", "e1"), ("d2", "e2")]
        for m in ("m1", "m2")
        for v, j in [("v1", "j1"), ("v2", "j2")]
        for rep in (1, 2)
    }
    fields = ("combo_id", "draft_template", "draft_llm", "essay_template", "essay_llm",
              "evaluation_template", "evaluation_llm", "draft_template_replicate")
    assert as_set(design, fields) == expected
    assert len(design) == len(expected) == 32
    assert all(isinstance(r["draft_template_replicate"], int) for r in design)


def test_replicates_shorthand_adds_an_integer_axis(write_spec) -> None:
    design = compile_design(
        write_spec(
            """
            axes:
              draft_template: [d1]
            replicates:
              draft_template: 3
              evaluation_template: {count: 2, column: evaluation_template_replicate}
            """
        )
    )
    assert design.fields == ("draft_template", "draft_template_replicate", "evaluation_template_replicate")
    assert [r["draft_template_replicate"] for r in design] == [1, 1, 2, 2, 3, 3]


def test_file_includes_single_multi_column_and_relative_paths(write_spec) -> None:
    spec = write_spec(
        """
        axes:
          draft_template: '@file:levels/drafts.csv'
          essay_template: '@file:levels/essays.txt'
          evaluation_template: [v1, v2]
          evaluation_llm: '@file:../spec/levels/judges.yaml'
        rules:
          subsets:
            draft_template: '@file:levels/keep.csv'
          pairs:
            draft_essay:
              left: draft_template
              right: essay_template
              allowed: '@file:levels/pairs.csv'
          tuples:
            evaluator:
              axes: [evaluation_template, evaluation_llm]
              items: '@file:levels/evaluators.csv'
        """,
        files={
            "levels/drafts.csv": "template_id\nd1\nd2\nd3\n",
            "levels/keep.csv": "template_id\nd1\nd2\n\n",
            "levels/essays.txt": "e1\ne2\n",
            "levels/judges.yaml": "- j1\n- j2\n",
            "levels/pairs.csv": "draft_template,essay_template\nd1,e2\nd2,e1\nd3,e1\n",
            # Header names match the axes in another order: columns are matched by name.
            "levels/evaluators.csv": "evaluation_llm,evaluation_template\nj2,v1\nj1,v2\n",
        },
    )
    design = compile_design(spec)
    fields = ("draft_template", "essay_template", "evaluation_template", "evaluation_llm")
    assert as_set(design, fields) == {
        (d, e, v, j) for d, e in [("d1", "e2"), ("d2", "e1")] for v, j in [("v1", "j2"), ("v2", "j1")]
    }
    assert len(load_spec(spec).includes) == 6


def test_tuple_file_with_positional_header_and_pair_with_tuple_side_from_csv(write_spec) -> None:
    design = compile_design(
        write_spec(
            """
            axes:
              draft_template: [d1, d2]
            rules:
              tuples:
                essay_bundle:
                  axes: [essay_template, essay_llm]
                  items: '@file:bundles.csv'
              pairs:
                chain:
                  left: essay_bundle
                  right: draft_template
                  allowed: '@file:chain.csv'
            """,
            files={
                "bundles.csv": "a,b\ne1,m1\ne2,m2\n",
                "chain.csv": "draft_template,essay_template,essay_llm\nd1,e2,m2\nd2,e1,m1\n",
            },
        )
    )
    assert as_set(design, ("draft_template", "essay_template", "essay_llm")) == {("d1", "e2", "m2"), ("d2", "e1", "m1")}


@pytest.mark.parametrize("name", ["config.yaml", "config.json", "config.toml"])
def test_yaml_json_and_toml_specs_compile_alike(write_spec, name: str) -> None:
    spec = {
        "axes": {
            "draft_template": ["d1", "d2"],
            "draft_llm": ["m1", "m2"],
            "essay_template": ["e1", "e2"],
            "essay_llm": ["m2", "m3"],
        },
        "rules": {"ties": {"same_model": {"axes": ["draft_llm", "essay_llm"]}}},
        "output": {"field_order": ["draft_llm"]},
    }
    design = compile_design(write_spec(spec, name=name))
    assert design.fields == ("draft_llm", "draft_template", "essay_llm", "essay_template")
    assert as_set(design, ("draft_template", "draft_llm", "essay_template", "essay_llm")) == {
        (d, "m2", e, "m2") for d in ("d1", "d2") for e in ("e1", "e2")
    }


def test_combos_section_generates_combo_ids(write_spec) -> None:
    design = compile_design(
        write_spec(
            """
            combos:
              every_pair:
                concepts: [a, b, c, d]
                k: 2
                level: paragraph
              explicit:
                sets: [[x, y, z], [x]]
                level: sentence
            axes:
              combo_id: [legacy_combo]
              draft_template: [d1]
            """
        )
    )
    expected = [
        "legacy_combo",
        *(combo_id_for(pair, "paragraph", 2) for pair in [("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")]),
        combo_id_for(["x", "y", "z"], "sentence", 3),
        combo_id_for(["x"], "sentence", 3),
    ]
    assert [r["combo_id"] for r in design] == expected
    spec = design.spec
    assert [r.concept_ids for r in spec.combo_requests()][-1] == ("x",)
    assert {r.k_max for r in spec.combo_requests()} == {2, 3}


def test_seed_shuffles_deterministically(write_spec) -> None:
    text = """
        axes:
          a: [{levels}]
          b: [x, y, z]
        output:
          seed: {seed}
        """
    levels = ", ".join(f"l{i}" for i in range(20))
    first = [tuple(r.values()) for r in compile_design(write_spec(text.format(levels=levels, seed=7)))]
    again = [tuple(r.values()) for r in compile_design(write_spec(text.format(levels=levels, seed=7)))]
    other = [tuple(r.values()) for r in compile_design(write_spec(text.format(levels=levels, seed=8)))]
    assert first == again and first != other
    assert Counter(first) == Counter(other) == Counter(product([f"l{i}" for i in range(20)], ["x", "y", "z"]))


def test_parse_spec_from_memory_and_csv_jsonl_output(tmp_path: Path) -> None:
    (tmp_path / "judges.csv").write_text("id\nj1\n")
    spec = parse_spec(
        {"axes": {"evaluation_llm": "@file:judges.csv", "evaluation_template_replicate": ["1", 2]}},
        source=tmp_path / "inline.yaml",
    )
    design = compile_spec(spec)
    assert design.to_csv() == "evaluation_llm,evaluation_template_replicate\nj1,1\nj1,2\n"
    assert design.to_jsonl().splitlines()[1] == '{"evaluation_llm": "j1", "evaluation_template_replicate": 2}'


def test_demo_spec_compiles_to_the_documented_size() -> None:
    design = compile_design(Path(__file__).resolve().parents[2] / "data" / "cohorts" / "demo" / "spec")
    assert len(design) == 32
    assert {r["draft_llm"] for r in design} == {r["evaluation_llm"] for r in design} == {"offline"}
    assert len({r["combo_id"] for r in design}) == 4
