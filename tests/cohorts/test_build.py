"""build_cohort on a real data root: files written, idempotence, sharing, validation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from daydreaming_dagster.cohorts import (
    build_cohort,
    discover_cohorts,
    load_membership,
    read_membership,
)
from daydreaming_dagster.cohorts.membership import METADATA_KEYS
from daydreaming_dagster.combos import read_combo_mappings
from daydreaming_dagster.data_layer import GensDataLayer, resolve_generation_metadata
from daydreaming_dagster.errors import MembershipError, SpecError


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Content and mtime of every file under the root (except the catalogs)."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() and "1_raw" not in p.parts
    }


def spec_path(root: Path, cohort: str = "demo") -> Path:
    return root / "cohorts" / cohort / "spec" / "config.yaml"


def test_demo_build_writes_membership_manifest_and_metadata(demo_root: Path) -> None:
    build = build_cohort(demo_root, "demo")
    assert build.counts == {"draft": 8, "essay": 16, "evaluation": 32, "comparison": 0}
    assert build.metadata_written == 56 and build.metadata_kept == 0
    lines = build.membership_path.read_text().splitlines()
    assert lines[0] == "stage,gen_id" and len(lines) == 57
    assert [line.split(",")[0] for line in lines[1:]] == ["draft"] * 8 + ["essay"] * 16 + ["evaluation"] * 32
    members = read_membership(demo_root, "demo")
    assert members["draft"] == build.membership.gen_ids("draft")
    assert members["evaluation"] == build.membership.gen_ids("evaluation")

    manifest = json.loads(build.manifest_path.read_text())
    assert manifest["cohort_id"] == "demo" and manifest["spec"] == "spec/config.yaml"
    assert manifest["counts"] == build.counts
    assert manifest["model_calls"] == {"draft": 8, "essay": 8, "evaluation": 32, "comparison": 0}
    assert manifest["essay_templates"] == ["essay-expand", "essay-copy"]
    assert manifest["essay_llms"] == ["offline"] and len(manifest["combos"]) == 4
    assert list(read_combo_mappings(demo_root)) == manifest["combos"]

    layer = GensDataLayer.from_root(demo_root)
    for row in build.membership.all_rows():
        meta = layer.read_main_metadata(row.stage, row.gen_id)
        assert tuple(sorted(meta)) == tuple(sorted(METADATA_KEYS))
        assert meta["cohort_id"] == "demo" and meta["replicate"] == 1
        resolved = resolve_generation_metadata(layer, row.stage, row.gen_id)
        assert (resolved.template_id, resolved.parent_gen_id, resolved.mode, resolved.llm_model_id, resolved.combo_id) == (
            row.template_id,
            row.parent_gen_id,
            row.mode,
            row.llm_model_id,
            row.combo_id,
        )
    copy_essay = next(r for r in build.membership.essays if r.mode == "copy")
    meta = layer.read_main_metadata("essay", copy_essay.gen_id)
    assert meta["llm_model_id"] is None and meta["mode"] == "copy" and meta["parent_gen_id"].startswith("d_")
    draft_meta = layer.read_main_metadata("draft", build.membership.drafts[0].gen_id)
    assert draft_meta["parent_gen_id"] is None
    assert load_membership(demo_root, "demo").all_rows().__next__() == build.membership.drafts[0]
    assert list(load_membership(demo_root, "demo").all_rows()) == list(build.membership.all_rows())


def test_rebuilding_an_unchanged_cohort_rewrites_nothing(demo_root: Path) -> None:
    build_cohort(demo_root, "demo")
    before = snapshot(demo_root)
    again = build_cohort(demo_root, "demo")
    assert again.metadata_written == 0 and again.metadata_kept == 56 and again.files_changed == ()
    assert snapshot(demo_root) == before


def test_changed_spec_adds_generations_without_rewriting_others(demo_root: Path) -> None:
    first = build_cohort(demo_root, "demo")
    before = snapshot(demo_root)
    spec = spec_path(demo_root)
    spec.write_text(spec.read_text().replace("evaluation_llm: [offline]", "evaluation_llm: [offline]\n  evaluation_template_replicate: [1, 2]"))
    second = build_cohort(demo_root, "demo")
    assert second.counts == {"draft": 8, "essay": 16, "evaluation": 64, "comparison": 0}
    assert second.metadata_written == 32 and second.metadata_kept == 56
    after = snapshot(demo_root)
    for name, state in before.items():
        if name.startswith("gens/"):
            assert after[name] == state, f"{name} was rewritten"
    assert set(second.membership.gen_ids("evaluation")) > set(first.membership.gen_ids("evaluation"))
    assert set(second.files_changed) == {str(second.membership_path), str(second.manifest_path)}


def test_two_cohorts_share_a_draft_directory(demo_root: Path) -> None:
    build_cohort(demo_root, "demo")
    other = demo_root / "cohorts" / "second" / "spec"
    other.mkdir(parents=True)
    # Same first combo and draft template, another essay set-up.
    (other / "config.yaml").write_text(
        """
combos:
  one: {sets: [[tide-pools, error-correcting-codes]], level: paragraph}
axes:
  draft_template: [links-ideas]
  draft_llm: [offline]
  essay_template: [essay-copy]
"""
    )
    layer = GensDataLayer.from_root(demo_root)
    demo_drafts = read_membership(demo_root, "demo")["draft"]
    shared = demo_drafts[0]
    path = layer.main_metadata_path("draft", shared)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    second = build_cohort(demo_root, "second")
    assert second.membership.gen_ids("draft") == [shared]
    assert second.metadata_kept == 2 and second.metadata_written == 0  # demo already seeded both
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert layer.read_main_metadata("draft", shared)["cohort_id"] == "demo"
    assert len(list((demo_root / "gens" / "draft").iterdir())) == 8
    assert discover_cohorts(demo_root) == ["demo", "second"]


def test_existing_metadata_that_disagrees_is_an_error_not_overwritten(demo_root: Path) -> None:
    build = build_cohort(demo_root, "demo")
    layer = GensDataLayer.from_root(demo_root)
    gen_id = build.membership.drafts[0].gen_id
    meta = layer.read_main_metadata("draft", gen_id)
    meta["template_id"] = "something-else"
    layer.write_main_metadata("draft", gen_id, meta)
    tampered = layer.main_metadata_path("draft", gen_id).read_bytes()
    (demo_root / "cohorts" / "demo" / "membership.csv").unlink()
    with pytest.raises(MembershipError) as info:
        build_cohort(demo_root, "demo")
    assert gen_id in str(info.value) and "template_id='something-else' (cohort: 'links-ideas')" in str(info.value)
    assert layer.main_metadata_path("draft", gen_id).read_bytes() == tampered
    assert not (demo_root / "cohorts" / "demo" / "membership.csv").exists()


def test_catalog_validation_lists_every_problem_and_writes_nothing(demo_root: Path) -> None:
    (demo_root / "1_raw" / "templates" / "essay" / "essay-expand.txt").unlink()
    spec = spec_path(demo_root)
    text = spec.read_text()
    text = text.replace("draft_template: [links-ideas, links-notes]", "draft_template: [links-ideas, no-such-draft]")
    text = text.replace("evaluation_llm: [offline]", "evaluation_llm: [offline, no-such-model]")
    text = text.replace("[jazz-improvisation, apprenticeship]", "[jazz-improvisation, no-such-concept]")
    text = text.replace("axes:\n", "axes:\n  combo_id: [combo_unregistered]\n")
    spec.write_text(text)
    with pytest.raises(MembershipError) as info:
        build_cohort(demo_root, "demo")
    message = str(info.value)
    assert message.startswith(f"{spec}: the cohort does not match the catalogs")
    for fragment in (
        "unknown draft template(s): no-such-draft",
        "unknown model(s): no-such-model",
        "unknown combo(s): combo_unregistered",
        "unknown concept(s) in the combos section: no-such-concept",
        "missing template file(s):",
        "essay-expand.txt",
    ):
        assert fragment in message, fragment
    assert not (demo_root / "gens").exists()
    assert not (demo_root / "combo_mappings.csv").exists()
    assert not (demo_root / "cohorts" / "demo" / "membership.csv").exists()


def test_spec_errors_and_missing_cohorts(demo_root: Path) -> None:
    with pytest.raises(SpecError, match="no spec file"):
        build_cohort(demo_root, "absent")
    with pytest.raises(MembershipError, match="invalid cohort id"):
        build_cohort(demo_root, "../demo")
    with pytest.raises(MembershipError, match="has no membership file .*build it first"):
        read_membership(demo_root, "demo")
    spec_path(demo_root).write_text("axes:\n  draft_template: [links-ideas]\n  draft_llm: offline\n")
    with pytest.raises(SpecError, match="axes.draft_llm"):
        build_cohort(demo_root, "demo")


def test_spec_in_json_and_toml_is_found(demo_root: Path) -> None:
    spec_dir = demo_root / "cohorts" / "demo" / "spec"
    (spec_dir / "config.yaml").unlink()
    (spec_dir / "config.toml").write_text(
        '[combos.one]\nsets = [["origami", "crop-rotation"]]\nlevel = "sentence"\n'
        '[axes]\ndraft_template = ["links-notes"]\ndraft_llm = ["offline"]\n'
    )
    assert discover_cohorts(demo_root) == ["demo"]
    assert build_cohort(demo_root, "demo").counts == {"draft": 1, "essay": 0, "evaluation": 0, "comparison": 0}


def test_read_membership_rejects_malformed_files(demo_root: Path) -> None:
    path = demo_root / "cohorts" / "demo" / "membership.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    for text, message in (
        ("stage,gen_id\nchapter,d_x\n", "line 2: unknown stage 'chapter'"),
        ("stage,gen_id\ndraft,../x\n", "line 2: invalid gen_id"),
        ("stage,gen_id\ndraft,d_x\ndraft,d_x\n", "line 3: draft d_x is listed twice"),
        ("gen_id\nd_x\n", "missing required column"),
    ):
        path.write_text(text)
        with pytest.raises(MembershipError, match=message):
            read_membership(demo_root, "demo")


def test_discover_skips_directories_without_spec_or_valid_name(demo_root: Path) -> None:
    (demo_root / "cohorts" / "no-spec").mkdir()
    bad = demo_root / "cohorts" / "bad name" / "spec"
    bad.mkdir(parents=True)
    shutil.copy(spec_path(demo_root), bad / "config.yaml")
    assert discover_cohorts(demo_root) == ["demo"]
    assert discover_cohorts(demo_root / "nowhere") == []
