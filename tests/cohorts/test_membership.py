"""Design rows -> drafts, essays, evaluations: ids, links, dedup, copy mode, validation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from daydreaming_dagster.catalog_types import ModelInfo, TemplateInfo
from daydreaming_dagster.catalogs import Catalogs, load_catalogs
from daydreaming_dagster.cohorts import build_membership, compile_design, stale_partition_keys
from daydreaming_dagster.errors import MembershipError
from daydreaming_dagster.ids import draft_gen_id, essay_gen_id, evaluation_gen_id

REPO_DATA = Path(__file__).resolve().parents[2] / "data"


def catalogs(copy: tuple[str, ...] = ("e-copy",), combos: tuple[str, ...] = ("c1", "c2")) -> Catalogs:
    def templates(stage, ids, copy_ids=()):
        return {t: TemplateInfo(stage=stage, template_id=t, generator="copy" if t in copy_ids else "llm") for t in ids}

    return Catalogs(
        templates={
            "draft": templates("draft", ["d1", "d2"]),
            "essay": templates("essay", ["e1", "e-copy"], copy),
            "evaluation": templates("evaluation", ["v1", "v2"]),
        },
        models={m: ModelInfo(id=m, model=f"vendor/{m}") for m in ("m1", "m2")},
        combo_ids=frozenset(combos),
    )


def row(**values):
    base = {
        "combo_id": "c1",
        "draft_template": "d1",
        "draft_llm": "m1",
        "essay_template": "e1",
        "essay_llm": "m1",
        "evaluation_template": "v1",
        "evaluation_llm": "m1",
    }
    base.update(values)
    return base


def test_ids_links_and_dedup() -> None:
    design = [row(), row(evaluation_template="v2"), row(essay_llm="m2"), row(draft_template="d2")]
    membership = build_membership(design, catalogs())
    d1 = draft_gen_id("c1", "d1", "m1", 1)
    d2 = draft_gen_id("c1", "d2", "m1", 1)
    e11 = essay_gen_id(d1, "e1", "m1", 1)
    e12 = essay_gen_id(d1, "e1", "m2", 1)
    e21 = essay_gen_id(d2, "e1", "m1", 1)
    assert membership.gen_ids("draft") == [d1, d2]
    assert membership.gen_ids("essay") == [e11, e12, e21]
    assert membership.gen_ids("evaluation") == [
        evaluation_gen_id(e11, "v1", "m1", 1),
        evaluation_gen_id(e11, "v2", "m1", 1),
        evaluation_gen_id(e12, "v1", "m1", 1),
        evaluation_gen_id(e21, "v1", "m1", 1),
    ]
    assert [r.parent_gen_id for r in membership.essays] == [d1, d1, d2]
    assert {r.combo_id for r in membership.all_rows()} == {"c1"}
    assert membership.design_rows == 4 and len(membership) == 9
    assert membership.drafts[0].parent_gen_id is None and membership.drafts[0].mode == "llm"
    parents = membership.parents()
    assert len(parents) == 9 and parents[d1] is None and parents[e12] == d1 and parents[e21] == d2
    assert parents[evaluation_gen_id(e21, "v1", "m1", 1)] == e21


def test_copy_mode_collapses_the_essay_model() -> None:
    design = [row(essay_template="e-copy", essay_llm=m) for m in ("m1", "m2")]
    membership = build_membership(design, catalogs())
    assert len(membership.essays) == 1
    essay = membership.essays[0]
    assert essay.mode == "copy" and essay.llm_model_id is None
    assert essay.gen_id == essay_gen_id(membership.drafts[0].gen_id, "e-copy", None, 1)
    assert len(membership.evaluations) == 1
    assert membership.model_calls() == {"draft": 1, "essay": 0, "evaluation": 1, "comparison": 0}


def test_copy_mode_needs_no_essay_llm_axis_but_llm_essays_do() -> None:
    design = [{k: v for k, v in row(essay_template="e-copy").items() if k != "essay_llm"}]
    assert build_membership(design, catalogs()).essays[0].mode == "copy"
    with pytest.raises(MembershipError, match="essay template 'e1' calls a model but the spec has no essay_llm axis"):
        build_membership([{k: v for k, v in row().items() if k != "essay_llm"}], catalogs())


def test_replicates_default_to_one_and_enter_the_ids() -> None:
    design = [
        row(draft_template_replicate=r, essay_template_replicate=1, evaluation_template_replicate=v)
        for r in (1, 2)
        for v in (1, 2)
    ]
    membership = build_membership(design, catalogs())
    assert [r.replicate for r in membership.drafts] == [1, 2]
    assert len(membership.essays) == 2 and len(membership.evaluations) == 4
    assert membership.drafts[0].gen_id == build_membership([row()], catalogs()).drafts[0].gen_id


def test_partial_designs() -> None:
    drafts_only = [{"combo_id": "c1", "draft_template": "d1", "draft_llm": "m1"}]
    membership = build_membership(drafts_only, catalogs())
    assert membership.counts() == {"draft": 1, "essay": 0, "evaluation": 0, "comparison": 0}
    with pytest.raises(MembershipError, match="no combo_id, draft_llm column"):
        build_membership([{"draft_template": "d1"}], catalogs(), source="spec.yaml")
    with pytest.raises(MembershipError, match="evaluation axes need an essay_template axis"):
        build_membership([{**drafts_only[0], "evaluation_template": "v1", "evaluation_llm": "m1"}], catalogs())
    with pytest.raises(MembershipError, match="evaluation_template but no evaluation_llm"):
        build_membership([{k: v for k, v in row().items() if k != "evaluation_llm"}], catalogs())


def test_validation_lists_every_unknown_value_in_one_error() -> None:
    design = [
        row(draft_template="d9", essay_template="e9", evaluation_template="v9", draft_llm="m9", combo_id="c9"),
        row(evaluation_llm="m8", draft_template="d8"),
    ]
    with pytest.raises(MembershipError) as info:
        build_membership(design, catalogs(), source="cohorts/x/spec/config.yaml")
    message = str(info.value)
    assert message.startswith("cohorts/x/spec/config.yaml: the cohort does not match the catalogs")
    for fragment in (
        "unknown draft template(s): d9, d8",
        "unknown essay template(s): e9",
        "unknown evaluation template(s): v9",
        "unknown model(s): m9, m8",
        "unknown combo(s): c9",
        "known: d1, d2",
    ):
        assert fragment in message
    # Extra combo ids (about to be registered) count as known; nothing is validated without catalogs.
    assert build_membership([row(combo_id="c9")], catalogs(), extra_combo_ids={"c9"}).drafts[0].combo_id == "c9"
    assert len(build_membership(design, None)) == 6


def test_inactive_templates_are_rejected() -> None:
    cats = catalogs()
    cats.templates["draft"]["d2"] = TemplateInfo(stage="draft", template_id="d2", active=False)
    with pytest.raises(MembershipError, match=r"inactive draft template\(s\): d2"):
        build_membership([row(draft_template="d2")], cats)


def test_to_frame_has_every_column() -> None:
    membership = build_membership([row(), row(essay_template="e-copy")], catalogs())
    frame = membership.to_frame()
    assert frame.columns == ["stage", "gen_id", "parent_gen_id", "template_id", "llm_model_id", "combo_id", "replicate", "mode"]
    assert frame.height == 5
    assert frame.filter(frame["mode"] == "copy")["llm_model_id"].to_list() == [None]


def test_demo_ids_are_pinned() -> None:
    """Changing these orphans every existing gens store: they must never change silently."""
    design = compile_design(REPO_DATA / "cohorts" / "demo" / "spec")
    membership = build_membership(design, load_catalogs(REPO_DATA), validate=False)
    assert design[0]["combo_id"] == "combo_mpc8b3jjpr9d"
    assert membership.drafts[0].gen_id == "d_q4e17ar1gexwdbp9"
    assert [e.gen_id for e in membership.essays[:2]] == ["e_q7q0z7k3x2niifzr", "e_rgz8f3ynkb6x7if6"]
    assert membership.essays[1].mode == "copy"
    assert membership.evaluations[0].gen_id == "v_ojd3i82w4xp8ykro"
    assert membership.counts() == {"draft": 8, "essay": 16, "evaluation": 32, "comparison": 0}


_CHILD = """
import json, sys
from daydreaming_dagster.catalogs import load_catalogs
from daydreaming_dagster.cohorts import build_membership, compile_design
design = compile_design(sys.argv[1])
m = build_membership(design, load_catalogs(sys.argv[2]), validate=False)
print(json.dumps([r.as_dict() for r in m.all_rows()]))
"""


def test_ids_are_identical_across_processes() -> None:
    """Fresh interpreters with different hash seeds compile the same ids in the same order."""
    outputs = []
    for seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-c", _CHILD, str(REPO_DATA / "cohorts" / "demo" / "spec"), str(REPO_DATA)],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
        )
        outputs.append(json.loads(result.stdout))
    assert outputs[0] == outputs[1]
    design = compile_design(REPO_DATA / "cohorts" / "demo" / "spec")
    here = build_membership(design, load_catalogs(REPO_DATA), validate=False)
    assert outputs[0] == [r.as_dict() for r in here.all_rows()]


def test_stale_partition_keys() -> None:
    present = {"draft_gens": ["a", "b", "c"], "cohorts": ["x"]}
    referenced = {"draft_gens": {"b"}}
    assert stale_partition_keys(present, referenced) == {"draft_gens": ["a", "c"], "cohorts": ["x"]}
