"""``resolve_generation_metadata``: the typed, checked view of a generation's metadata.json."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from daydreaming_dagster.data_layer import (
    GenerationMetadata,
    GensDataLayer,
    resolve_generation_metadata,
)


@pytest.fixture
def layer(data_root: Path) -> GensDataLayer:
    """A data layer over the per-test empty data root."""
    return GensDataLayer.from_root(data_root)


def _seed(layer: GensDataLayer, stage: str, gen_id: str, **meta: Any) -> None:
    layer.write_main_metadata(stage, gen_id, {"stage": stage, "gen_id": gen_id, **meta})


def test_draft(layer: GensDataLayer) -> None:
    _seed(
        layer,
        "draft",
        "d_1",
        template_id="links-v4",
        mode="llm",
        combo_id="combo_abc",
        llm_model_id="deepseek_r1_f",
        cohort_id="demo",
        replicate=2,
    )
    assert resolve_generation_metadata(layer, "draft", "d_1") == GenerationMetadata(
        stage="draft",
        gen_id="d_1",
        template_id="links-v4",
        parent_stage=None,
        parent_gen_id=None,
        mode="llm",
        combo_id="combo_abc",
        cohort_id="demo",
        llm_model_id="deepseek_r1_f",
        replicate=2,
    )


def test_defaults_for_optional_fields(layer: GensDataLayer) -> None:
    _seed(layer, "draft", "d_1", template_id="t1")
    meta = resolve_generation_metadata(layer, "draft", "d_1")
    assert meta.mode == "llm"  # absent mode means an LLM call
    assert meta.replicate == 1
    assert meta.combo_id is None and meta.cohort_id is None and meta.llm_model_id is None


def test_essay_and_evaluation_get_their_parent_stage(layer: GensDataLayer) -> None:
    _seed(layer, "essay", "e_1", template_id="essay-t", parent_gen_id="d_1", llm_model_id="m")
    _seed(layer, "evaluation", "v_1", template_id="eval-t", parent_gen_id="e_1", llm_model_id="m")
    essay = resolve_generation_metadata(layer, "essay", "e_1")
    assert (essay.parent_stage, essay.parent_gen_id, essay.mode) == ("draft", "d_1", "llm")
    evaluation = resolve_generation_metadata(layer, "evaluation", "v_1")
    assert (evaluation.parent_stage, evaluation.parent_gen_id) == ("essay", "e_1")


def test_copy_mode_with_parent(layer: GensDataLayer) -> None:
    _seed(layer, "essay", "e_1", template_id="parsed-copy", mode=" COPY ", parent_gen_id="d_1")
    meta = resolve_generation_metadata(layer, "essay", "e_1")
    assert meta.mode == "copy"  # normalised
    assert (meta.parent_stage, meta.parent_gen_id, meta.llm_model_id) == ("draft", "d_1", None)


def test_text_fields_are_trimmed(layer: GensDataLayer) -> None:
    _seed(
        layer,
        "essay",
        "e_1",
        template_id="  t1 ",
        parent_gen_id=" d_1 ",
        combo_id=" ",
        cohort_id="",
    )
    meta = resolve_generation_metadata(layer, "essay", "e_1")
    assert (meta.template_id, meta.parent_gen_id) == ("t1", "d_1")
    assert meta.combo_id is None and meta.cohort_id is None


def test_result_is_frozen(layer: GensDataLayer) -> None:
    _seed(layer, "draft", "d_1", template_id="t1")
    meta = resolve_generation_metadata(layer, "draft", "d_1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.mode = "copy"  # type: ignore[misc]


def _assert_names_generation(
    info: pytest.ExceptionInfo[ValueError], layer: GensDataLayer, stage: str, gen_id: str
) -> None:
    message = str(info.value)
    assert f"{stage}/{gen_id}" in message
    assert str(layer.main_metadata_path(stage, gen_id)) in message


@pytest.mark.parametrize("stage,gen_id", [("essay", "e_1"), ("evaluation", "v_1")])
def test_copy_mode_without_parent(layer: GensDataLayer, stage: str, gen_id: str) -> None:
    _seed(layer, stage, gen_id, template_id="parsed-copy", mode="copy")
    with pytest.raises(ValueError, match="copy mode requires parent") as info:
        resolve_generation_metadata(layer, stage, gen_id)
    _assert_names_generation(info, layer, stage, gen_id)


def test_copy_mode_draft_has_no_parent_to_copy(layer: GensDataLayer) -> None:
    _seed(layer, "draft", "d_1", template_id="t1", mode="copy")
    with pytest.raises(ValueError, match="copy mode requires parent"):
        resolve_generation_metadata(layer, "draft", "d_1")


@pytest.mark.parametrize("stage,gen_id", [("essay", "e_1"), ("evaluation", "v_1")])
@pytest.mark.parametrize("parent", [None, "", "   "])
def test_missing_parent(layer: GensDataLayer, stage: str, gen_id: str, parent: Any) -> None:
    _seed(layer, stage, gen_id, template_id="t1", parent_gen_id=parent)
    with pytest.raises(ValueError, match="parent_gen_id is required") as info:
        resolve_generation_metadata(layer, stage, gen_id)
    _assert_names_generation(info, layer, stage, gen_id)


@pytest.mark.parametrize("mode", ["LLM-ish", "paste", "0"])
def test_unknown_mode(layer: GensDataLayer, mode: str) -> None:
    _seed(layer, "draft", "d_1", template_id="t1", mode=mode)
    with pytest.raises(ValueError, match="mode must be 'llm' or 'copy'") as info:
        resolve_generation_metadata(layer, "draft", "d_1")
    assert repr(mode) in str(info.value)
    _assert_names_generation(info, layer, "draft", "d_1")


@pytest.mark.parametrize("template", [None, "", "  "])
def test_missing_template_id(layer: GensDataLayer, template: Any) -> None:
    meta: dict[str, Any] = {"parent_gen_id": "d_1"}
    if template is not None:
        meta["template_id"] = template
    _seed(layer, "essay", "e_1", **meta)
    with pytest.raises(ValueError, match="template_id is missing") as info:
        resolve_generation_metadata(layer, "essay", "e_1")
    _assert_names_generation(info, layer, "essay", "e_1")


def test_draft_with_parent(layer: GensDataLayer) -> None:
    _seed(layer, "draft", "d_1", template_id="t1", parent_gen_id="d_0")
    with pytest.raises(ValueError, match="drafts have no parent") as info:
        resolve_generation_metadata(layer, "draft", "d_1")
    _assert_names_generation(info, layer, "draft", "d_1")


@pytest.mark.parametrize("parent", ["../d_1", "d/1", "..", "d 1"])
def test_unsafe_parent_id(layer: GensDataLayer, parent: str) -> None:
    _seed(layer, "essay", "e_1", template_id="t1", parent_gen_id=parent)
    with pytest.raises(ValueError, match="invalid gen_id"):
        resolve_generation_metadata(layer, "essay", "e_1")


@pytest.mark.parametrize(
    "replicate", ["two", [1], "1.5", 1.5, 0, -1, "0", "--1", "+1", "١", True, ""]
)
def test_bad_replicate(layer: GensDataLayer, replicate: Any) -> None:
    _seed(layer, "draft", "d_1", template_id="t1", replicate=replicate)
    with pytest.raises(ValueError, match="replicate must be an integer >= 1") as info:
        resolve_generation_metadata(layer, "draft", "d_1")
    assert repr(replicate) in str(info.value)


@pytest.mark.parametrize(("replicate", "expected"), [(3, 3), ("2", 2), (" 4 ", 4), (None, 1)])
def test_replicate_from_int_or_csv_text(
    layer: GensDataLayer, replicate: Any, expected: int
) -> None:
    _seed(layer, "draft", "d_1", template_id="t1", replicate=replicate)
    assert resolve_generation_metadata(layer, "draft", "d_1").replicate == expected


def test_missing_metadata_names_the_path(layer: GensDataLayer) -> None:
    with pytest.raises(FileNotFoundError) as info:
        resolve_generation_metadata(layer, "draft", "d_missing")
    assert str(layer.main_metadata_path("draft", "d_missing")) in str(info.value)


@pytest.mark.parametrize("content", ['{"template_id": ', '["t1"]'])
def test_malformed_metadata_names_the_file(layer: GensDataLayer, content: str) -> None:
    path = layer.main_metadata_path("draft", "d_1")
    path.parent.mkdir(parents=True)
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        resolve_generation_metadata(layer, "draft", "d_1")
    assert str(path) in str(info.value)


def test_reads_metadata_written_by_hand(layer: GensDataLayer) -> None:
    """A metadata.json in the legacy layout (written by another tool) resolves the same."""
    path = layer.main_metadata_path("evaluation", "v_legacy")
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps(
            {"template_id": "daydreaming-verification-v2", "parent_gen_id": "e_1", "mode": "llm"}
        ),
        encoding="utf-8",
    )
    meta = resolve_generation_metadata(layer, "evaluation", "v_legacy")
    assert meta.template_id == "daydreaming-verification-v2"
    assert meta.parent_stage == "essay"


def test_unknown_stage_and_unsafe_id(layer: GensDataLayer, data_root: Path) -> None:
    with pytest.raises(ValueError, match="unknown stage"):
        resolve_generation_metadata(layer, "drafts", "d_1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid gen_id"):
        resolve_generation_metadata(layer, "draft", "../d_1")
    assert list(data_root.iterdir()) == []
