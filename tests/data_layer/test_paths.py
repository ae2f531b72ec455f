"""``Paths``: canonical names and every path helper, validated before any path is built."""

from __future__ import annotations

from pathlib import Path

import pytest

import daydreaming_dagster.data_layer as data_layer
from daydreaming_dagster.data_layer import (
    DATA_ROOT_ENV,
    METADATA_FILENAME,
    PARSED_FILENAME,
    PARSED_METADATA_FILENAME,
    PROMPT_FILENAME,
    RAW_FAILURE_LOG_FILENAME,
    RAW_FILENAME,
    RAW_METADATA_FILENAME,
    Paths,
    default_data_root,
)
from daydreaming_dagster.data_layer.paths import DESCRIPTION_LEVELS, as_root_path


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_canonical_file_names_match_the_on_disk_contract() -> None:
    # DESIGN §2: existing gens stores must stay readable, so these names may never change.
    assert PROMPT_FILENAME == "prompt.txt"
    assert RAW_FILENAME == "raw.txt"
    assert PARSED_FILENAME == "parsed.txt"
    assert METADATA_FILENAME == "metadata.json"
    assert RAW_METADATA_FILENAME == "raw_metadata.json"
    assert PARSED_METADATA_FILENAME == "parsed_metadata.json"
    assert RAW_FAILURE_LOG_FILENAME == "raw_failure.log"
    assert DATA_ROOT_ENV == "DAYDREAMING_DATA_ROOT"


def test_package_exports_the_seed_names() -> None:
    for name in (
        "Paths",
        "GensDataLayer",
        "GenerationMetadata",
        "resolve_generation_metadata",
        "default_data_root",
    ):
        assert name in data_layer.__all__
        assert getattr(data_layer, name) is not None


def test_gens_paths(tmp_path: Path) -> None:
    paths = Paths.from_str(tmp_path)
    gen = tmp_path / "gens" / "essay" / "e_abc123"
    assert paths.gens_root == tmp_path / "gens"
    assert paths.stage_dir("essay") == tmp_path / "gens" / "essay"
    assert paths.generation_dir("essay", "e_abc123") == gen
    assert paths.prompt_path("essay", "e_abc123") == gen / "prompt.txt"
    assert paths.raw_path("essay", "e_abc123") == gen / "raw.txt"
    assert paths.parsed_path("essay", "e_abc123") == gen / "parsed.txt"
    assert paths.metadata_path("essay", "e_abc123") == gen / "metadata.json"
    assert paths.raw_metadata_path("essay", "e_abc123") == gen / "raw_metadata.json"
    assert paths.parsed_metadata_path("essay", "e_abc123") == gen / "parsed_metadata.json"
    assert paths.raw_failure_log_path("essay", "e_abc123") == gen / "raw_failure.log"


def test_raw_catalog_and_template_paths(tmp_path: Path) -> None:
    paths = Paths.from_str(tmp_path)
    raw = tmp_path / "1_raw"
    assert paths.raw_dir == raw
    assert paths.concepts_metadata_csv == raw / "concepts_metadata.csv"
    assert paths.concepts_dir == raw / "concepts"
    for level in ("sentence", "paragraph", "article"):
        assert paths.concept_descriptions_dir(level) == raw / "concepts" / f"descriptions-{level}"
    assert DESCRIPTION_LEVELS == ("sentence", "paragraph", "article")
    assert (
        paths.concept_description_path("paragraph", "dmn_basics")
        == raw / "concepts" / "descriptions-paragraph" / "dmn_basics.txt"
    )
    assert paths.templates_csv("draft") == raw / "draft_templates.csv"
    assert paths.templates_csv("evaluation") == raw / "evaluation_templates.csv"
    assert paths.templates_dir("essay") == raw / "templates" / "essay"
    assert paths.template_file("essay", "creative-synthesis-v10") == (
        raw / "templates" / "essay" / "creative-synthesis-v10.txt"
    )
    assert paths.llm_models_csv == raw / "llm_models.csv"
    assert paths.combo_mappings_csv == tmp_path / "combo_mappings.csv"


def test_cohort_and_results_paths(tmp_path: Path) -> None:
    paths = Paths.from_str(tmp_path)
    cohort = tmp_path / "cohorts" / "demo-1"
    assert paths.cohorts_dir == tmp_path / "cohorts"
    assert paths.cohort_dir("demo-1") == cohort
    assert paths.cohort_spec_dir("demo-1") == cohort / "spec"
    assert paths.cohort_spec_path("demo-1") == cohort / "spec" / "config.yaml"
    assert paths.cohort_manifest_path("demo-1") == cohort / "manifest.json"
    assert paths.cohort_membership_path("demo-1") == cohort / "membership.csv"
    assert paths.cohort_reports_dir("demo-1") == cohort / "reports"
    assert paths.results_dir == tmp_path / "results"
    assert paths.cohort_results_dir("demo-1") == tmp_path / "results" / "demo-1"


def test_paths_never_touch_the_filesystem(tmp_path: Path) -> None:
    root = tmp_path / "not-created"
    paths = Paths.from_str(root)
    paths.prompt_path("draft", "d_x")
    paths.cohort_manifest_path("c1")
    paths.template_file("draft", "t1")
    paths.cohort_results_dir("c1")
    assert not root.exists()


@pytest.mark.parametrize("bad", ["../x", "a/b", "/abs", "", ".", "..", "a\x00b", "é", "a b"])
def test_id_like_components_are_validated(data_root: Path, bad: str) -> None:
    paths = Paths.from_str(data_root)
    helpers = [
        lambda: paths.generation_dir("draft", bad),
        lambda: paths.prompt_path("draft", bad),
        lambda: paths.raw_failure_log_path("evaluation", bad),
        lambda: paths.template_file("draft", bad),
        lambda: paths.concept_description_path("sentence", bad),
        lambda: paths.cohort_dir(bad),
        lambda: paths.cohort_membership_path(bad),
        lambda: paths.cohort_results_dir(bad),
    ]
    for helper in helpers:
        with pytest.raises(ValueError, match="invalid (gen_id|template id|concept id)"):
            helper()
    assert _tree(data_root) == set()


def test_catalog_ids_with_dots_stay_one_path_component(data_root: Path) -> None:
    """The established DayDreaming catalogs use ids like ``gemini_2.5_flash``: accepted for
    templates and concepts, still never '.', '..' nor a hidden name; gen ids stay strict."""
    paths = Paths.from_str(data_root)
    assert paths.template_file("draft", "creative.v2").name == "creative.v2.txt"
    assert paths.concept_description_path("sentence", "dual.process").name == "dual.process.txt"
    for bad in (".hidden", "..", "a/b.c"):
        with pytest.raises(ValueError, match="invalid template id"):
            paths.template_file("draft", bad)
    with pytest.raises(ValueError, match="invalid gen_id"):
        paths.generation_dir("draft", "d_a.b")


@pytest.mark.parametrize("stage", ["drafts", "", "Draft", "../draft", "essay/x"])
def test_unknown_stage_rejected(tmp_path: Path, stage: str) -> None:
    paths = Paths.from_str(tmp_path)
    for helper in (
        lambda: paths.stage_dir(stage),  # type: ignore[arg-type]
        lambda: paths.generation_dir(stage, "d_x"),  # type: ignore[arg-type]
        lambda: paths.templates_csv(stage),  # type: ignore[arg-type]
        lambda: paths.templates_dir(stage),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValueError, match="unknown stage") as info:
            helper()
        assert "draft, essay, evaluation" in str(info.value)


def test_unknown_description_level_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sentence, paragraph, article"):
        Paths.from_str(tmp_path).concept_descriptions_dir("essay")


def test_from_str_accepts_str_and_path(tmp_path: Path) -> None:
    assert Paths.from_str(str(tmp_path)).data_root == tmp_path
    assert Paths.from_str(tmp_path).data_root == tmp_path
    assert isinstance(as_root_path("relative/data"), Path)
    assert as_root_path("relative/data") == Path("relative/data")


def test_default_data_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_data_root() == "data"  # conftest clears DAYDREAMING_DATA_ROOT
    monkeypatch.setenv("DAYDREAMING_DATA_ROOT", "/srv/daydream")
    assert default_data_root() == "/srv/daydream"
    monkeypatch.setenv("DAYDREAMING_DATA_ROOT", "")
    assert default_data_root() == "data"
