"""Deterministic ids: pinned values (a changed digest would orphan every gens store),
normalisation, validation, shape, cross-process stability and distinctness."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from daydreaming_dagster.ids import (
    combo_id_for,
    draft_gen_id,
    ensure_gen_id,
    essay_gen_id,
    evaluation_gen_id,
    gen_id_from_signature,
    is_valid_gen_id,
)

# Pinned once from the implementation. If one of these fails the id scheme changed: existing
# gens stores and cohorts would no longer find their generations. Do not "fix" the literals.
DRAFT = "d_msq2d27it5clrmg8"  # draft_gen_id("combo_a", "t1", "m1", 1)
DRAFT_R2 = "d_aet2xc4vejrov32e"  # draft_gen_id("combo_a", "t1", "m1", 2)
ESSAY = "e_knk2ka8afzcj35ry"  # essay_gen_id(DRAFT, "essay_t", "m2", 1)
COPY_ESSAY = "e_9rg4ti104uqqoy28"  # essay_gen_id(DRAFT, "parsed_copy", None, 1)
EVALUATION = "v_ns8l5i3z9wo6n8zz"  # evaluation_gen_id(ESSAY, "eval_t", "m3", 2)
COMBO = "combo_qar9rc2c8upe"  # combo_id_for(["b", "a"], "paragraph", 2)
COMBO_XYZ = "combo_797c3w1ytrrt"  # combo_id_for(["x", "y", "z"], "sentence", 3)

GEN_ID_SHAPE = {
    "draft": re.compile(r"d_[0-9a-z]{16}"),
    "essay": re.compile(r"e_[0-9a-z]{16}"),
    "evaluation": re.compile(r"v_[0-9a-z]{16}"),
}
COMBO_SHAPE = re.compile(r"combo_[0-9a-z]{12}")


def test_pinned_values() -> None:
    assert draft_gen_id("combo_a", "t1", "m1", 1) == "d_msq2d27it5clrmg8"
    assert draft_gen_id("combo_a", "t1", "m1", 2) == DRAFT_R2
    assert essay_gen_id(DRAFT, "essay_t", "m2", 1) == ESSAY
    assert essay_gen_id(DRAFT, "parsed_copy", None, 1) == COPY_ESSAY
    assert evaluation_gen_id(ESSAY, "eval_t", "m3", 2) == EVALUATION
    assert combo_id_for(["b", "a"], "paragraph", 2) == "combo_qar9rc2c8upe"
    assert combo_id_for(["x", "y", "z"], "sentence", 3) == COMBO_XYZ


def test_replicate_defaults_to_one() -> None:
    assert draft_gen_id("combo_a", "t1", "m1") == DRAFT
    assert essay_gen_id(DRAFT, "parsed_copy", None) == COPY_ESSAY


def test_generic_signature_matches_stage_helper() -> None:
    signature = {"combo_id": "combo_a", "template_id": "t1", "llm_model_id": "m1", "replicate": 1}
    assert gen_id_from_signature("draft", signature) == DRAFT


def test_deterministic_within_a_process() -> None:
    assert {draft_gen_id("combo_a", "t1", "m1", 1) for _ in range(50)} == {DRAFT}
    assert {combo_id_for(["a", "b"], "paragraph", 2) for _ in range(50)} == {COMBO}


def test_same_ids_in_a_separate_process() -> None:
    """Ids must not depend on process state (hash randomisation, import order)."""
    code = (
        "import json\n"
        "from daydreaming_dagster.ids import combo_id_for, draft_gen_id, essay_gen_id, evaluation_gen_id\n"
        "d = draft_gen_id('combo_a', 't1', 'm1', 1)\n"
        "e = essay_gen_id(d, 'essay_t', 'm2', 1)\n"
        "print(json.dumps([d, e, essay_gen_id(d, 'parsed_copy', None, 1),\n"
        "                  evaluation_gen_id(e, 'eval_t', 'm3', 2),\n"
        "                  combo_id_for(['b', 'a'], 'paragraph', 2)]))\n"
    )
    ids = []
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        ids.append(json.loads(out.stdout))
    assert ids[0] == ids[1] == [DRAFT, ESSAY, COPY_ESSAY, EVALUATION, COMBO]


# -- normalisation -----------------------------------------------------------------------------


def test_text_parts_are_trimmed_and_case_insensitive() -> None:
    assert draft_gen_id("  COMBO_A\t", " T1 ", "M1\n", 1) == DRAFT
    assert essay_gen_id(DRAFT.upper(), "Essay_T", " m2", 1) == ESSAY
    assert evaluation_gen_id(f" {ESSAY} ", "EVAL_T", "M3", 2) == EVALUATION
    assert combo_id_for([" B", "a "], " Paragraph ", 2) == COMBO


def test_replicate_accepts_equivalent_integer_text() -> None:
    assert draft_gen_id("combo_a", "t1", "m1", " 2 ") == DRAFT_R2  # type: ignore[arg-type]


def test_combo_id_ignores_order_and_duplicates() -> None:
    assert combo_id_for(["a", "b"], "paragraph", 2) == COMBO
    assert combo_id_for(["b", "a", "B", "a"], "paragraph", 2) == COMBO
    assert combo_id_for(("a", "b"), "paragraph", 3) != COMBO  # k_max is part of the identity
    assert combo_id_for(["a", "b"], "sentence", 2) != COMBO  # so is the description level


def test_copy_essay_differs_from_llm_essay() -> None:
    assert essay_gen_id(DRAFT, "parsed_copy", None, 1) != essay_gen_id(
        DRAFT, "parsed_copy", "m2", 1
    )


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize("empty", [None, "", "   ", "\t\n"])
@pytest.mark.parametrize(
    ("part", "build"),
    [
        ("combo_id", lambda v: draft_gen_id(v, "t1", "m1", 1)),
        ("template_id", lambda v: draft_gen_id("combo_a", v, "m1", 1)),
        ("llm_model_id", lambda v: draft_gen_id("combo_a", "t1", v, 1)),
        ("parent_gen_id", lambda v: essay_gen_id(v, "essay_t", "m2", 1)),
        ("template_id", lambda v: essay_gen_id(DRAFT, v, "m2", 1)),
        ("parent_gen_id", lambda v: evaluation_gen_id(v, "eval_t", "m3", 1)),
        ("template_id", lambda v: evaluation_gen_id(ESSAY, v, "m3", 1)),
        ("llm_model_id", lambda v: evaluation_gen_id(ESSAY, "eval_t", v, 1)),
        ("concept_id", lambda v: combo_id_for(["a", v], "paragraph", 2)),
        ("description_level", lambda v: combo_id_for(["a", "b"], v, 2)),
    ],
)
def test_empty_or_missing_part_is_rejected_by_name(part: str, build: Any, empty: Any) -> None:
    with pytest.raises(ValueError, match=rf"'{part}' is (missing|empty)"):
        build(empty)


def test_bool_part_is_rejected() -> None:
    with pytest.raises(ValueError, match="'template_id' must be text or an integer"):
        draft_gen_id("combo_a", True, "m1", 1)  # type: ignore[arg-type]


@pytest.mark.parametrize("replicate", [0, -1, "0", 1.5, 2.0, "x", "", None, True, [1]])
def test_replicate_must_be_an_integer_of_at_least_one(replicate: Any) -> None:
    for build in (
        lambda: draft_gen_id("combo_a", "t1", "m1", replicate),
        lambda: essay_gen_id(DRAFT, "essay_t", None, replicate),
        lambda: evaluation_gen_id(ESSAY, "eval_t", "m3", replicate),
    ):
        with pytest.raises(ValueError, match="'replicate'"):
            build()


def test_combo_needs_concepts_and_room_for_them() -> None:
    with pytest.raises(ValueError, match="at least one concept"):
        combo_id_for([], "paragraph", 2)
    with pytest.raises(ValueError, match="k_max=1 is smaller than the 2 concepts"):
        combo_id_for(["a", "b"], "paragraph", 1)


def test_unknown_stage_in_generic_signature() -> None:
    with pytest.raises(ValueError, match="unknown stage"):
        gen_id_from_signature("drafts", {"x": "y"})  # type: ignore[arg-type]


def test_ensure_gen_id() -> None:
    assert ensure_gen_id(DRAFT) == DRAFT
    assert ensure_gen_id("a" * 128) == "a" * 128
    for bad in ("", "../x", "a/b", ".", "..", "a" * 129, "é", "a b", "a\x00b", "_x", None, 5):
        assert not is_valid_gen_id(bad)
        with pytest.raises(ValueError, match="1-128 ASCII letters, digits"):
            ensure_gen_id(bad)


# -- shape and distinctness --------------------------------------------------------------------

COMBOS = [f"combo_{i}" for i in range(12)]
TEMPLATES = ["t1", "t2", "links-v4", "creative-synthesis-v10"]
MODELS = ["m1", "m2", "deepseek_r1_f", "gemini_25_pro", "copy_like"]
REPLICATES = [1, 2, 3]


def test_ids_have_fixed_length_alphabet_and_stage_prefix() -> None:
    drafts = [
        draft_gen_id(*sig) for sig in itertools.product(COMBOS, TEMPLATES, MODELS, REPLICATES)
    ]
    essays = [essay_gen_id(d, "essay_t", "m2", 1) for d in drafts[:100]]
    evaluations = [evaluation_gen_id(e, "eval_t", "m3", 1) for e in essays]
    for stage, ids in (("draft", drafts), ("essay", essays), ("evaluation", evaluations)):
        for gen_id in ids:
            assert GEN_ID_SHAPE[stage].fullmatch(gen_id), gen_id
            assert is_valid_gen_id(gen_id)
    combos = [combo_id_for(list(c), "paragraph", 3) for c in itertools.combinations("abcdefgh", 3)]
    assert all(COMBO_SHAPE.fullmatch(c) and is_valid_gen_id(c) for c in combos)


def test_distinct_signatures_give_distinct_ids() -> None:
    signatures = list(itertools.product(COMBOS, TEMPLATES, MODELS, REPLICATES))
    drafts = [draft_gen_id(*sig) for sig in signatures]
    assert len(set(drafts)) == len(signatures) == 720

    # Children of distinct parents differ, and copy mode is its own signature.
    essays = {
        essay_gen_id(d, t, m, r)
        for d in drafts[:40]
        for t in TEMPLATES
        for m in (*MODELS, None)
        for r in (1, 2)
    }
    assert len(essays) == 40 * len(TEMPLATES) * (len(MODELS) + 1) * 2

    combos = {
        combo_id_for(list(c), level, k)
        for n in (1, 2, 3)
        for c in itertools.combinations("abcdefg", n)
        for level in ("sentence", "paragraph", "article")
        for k in (3, 4)
    }
    assert len(combos) == (7 + 21 + 35) * 3 * 2


def test_parts_do_not_shift_between_fields() -> None:
    """Swapping values between named parts must change the id."""
    assert draft_gen_id("t1", "combo_a", "m1", 1) != DRAFT
    assert draft_gen_id("combo_a", "m1", "t1", 1) != DRAFT


def test_same_parts_in_another_stage_differ_beyond_the_prefix() -> None:
    essay = essay_gen_id("combo_a", "t1", "m1", 1)
    evaluation = evaluation_gen_id("combo_a", "t1", "m1", 1)
    assert essay[2:] != evaluation[2:]
