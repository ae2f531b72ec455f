"""Catalog loaders: columns, defaults, and errors that name the file, line and column."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from daydreaming_dagster.catalogs import (
    load_catalogs,
    load_concept_description,
    load_concepts,
    load_models,
    load_template_text,
    load_templates,
)
from daydreaming_dagster.errors import CatalogError
from daydreaming_dagster.types import STAGES

REPO_DATA = Path(__file__).resolve().parents[1] / "data"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_templates_defaults_and_order(data_root: Path) -> None:
    write(
        data_root / "1_raw" / "essay_templates.csv",
        "template_id,template_name,description,parser,generator,active\n"
        "b-llm,B,desc b,identity,llm,true\n"
        "a-copy,A,desc a,,copy,\n"
        "c-off,C,,,,false\n",
    )
    templates = load_templates(data_root, "essay")
    assert list(templates) == ["b-llm", "a-copy", "c-off"]
    assert templates["b-llm"].parser == "identity" and templates["b-llm"].generator == "llm"
    assert templates["a-copy"].parser is None and templates["a-copy"].generator == "copy"
    assert templates["a-copy"].active is True
    assert templates["c-off"].active is False and templates["c-off"].generator == "llm"
    assert templates["b-llm"].stage == "essay" and templates["b-llm"].description == "desc b"


def test_templates_only_template_id_is_required_and_bom_is_tolerated(data_root: Path) -> None:
    write(data_root / "1_raw" / "draft_templates.csv", "\ufefftemplate_id\nonly\n\n")
    assert load_templates(data_root, "draft")["only"].template_name == ""


@pytest.mark.parametrize(
    ("csv_text", "expected"),
    [
        ("name,parser\nx,identity\n", ["draft_templates.csv", "missing required column", "template_id"]),
        ("template_id,generator\na,llm\na,llm\n", ["line 3", "duplicate template_id 'a'", "first on line 2"]),
        ("template_id,generator\nok,llm\n,llm\n", ["line 3", "'template_id' is empty"]),
        ("template_id,generator\nbad id,llm\n", ["line 2", "'bad id' is not a valid id"]),
        ("template_id,generator\nx,magic\n", ["line 2", "generator 'magic'", "llm, copy"]),
        ("template_id,generator\nx,copy\n", ["line 2", "only essays support"]),
        ("template_id,active\nx,maybe\n", ["line 2", "'active' must be true or false", "'maybe'"]),
        ("template_id\nx,extra\n", ["line 2", "2 cells but the header has 1 columns"]),
        ("", ["draft_templates.csv", "empty"]),
    ],
)
def test_template_csv_errors_name_file_line_and_value(data_root: Path, csv_text: str, expected: list[str]) -> None:
    write(data_root / "1_raw" / "draft_templates.csv", csv_text)
    with pytest.raises(CatalogError) as info:
        load_templates(data_root, "draft")
    for fragment in expected:
        assert fragment in str(info.value)


def test_missing_templates_csv_names_the_path(data_root: Path) -> None:
    with pytest.raises(CatalogError, match=r"evaluation templates catalog not found: .*evaluation_templates\.csv"):
        load_templates(data_root, "evaluation")


def test_template_text_and_missing_file(data_root: Path) -> None:
    write(data_root / "1_raw" / "templates" / "draft" / "t1.txt", "Hello {{ concepts }}")
    assert load_template_text(data_root, "draft", "t1") == "Hello {{ concepts }}"
    with pytest.raises(CatalogError) as info:
        load_template_text(data_root, "draft", "t2")
    assert "templates/draft/t2.txt" in str(info.value) and "draft_templates.csv" in str(info.value)
    with pytest.raises(CatalogError, match="invalid draft template id"):
        load_template_text(data_root, "draft", "../etc/passwd")


def test_models_prices_extra_columns_and_defaults(data_root: Path) -> None:
    write(
        data_root / "1_raw" / "llm_models.csv",
        "id,model,provider,display_name,specialization,input_price_per_mtok,output_price_per_mtok,requests_per_minute,active\n"
        "m1,vendor/m1,openrouter,M One,generation,0.5,2,60,true\n"
        "m2,vendor/m2,,,,,,,false\n",
    )
    models = load_models(data_root)
    assert models["m1"].input_price_per_mtok == 0.5
    assert models["m1"].output_price_per_mtok == 2.0
    assert models["m1"].requests_per_minute == 60.0
    assert models["m1"].extra == {"active": "true"}
    assert models["m2"].provider == "openrouter"
    assert models["m2"].input_price_per_mtok is None and models["m2"].requests_per_minute is None


@pytest.mark.parametrize(
    ("csv_text", "expected"),
    [
        ("id,provider\nm1,offline\n", ["llm_models.csv", "missing required column", "model"]),
        ("id,model,input_price_per_mtok\nm1,x,cheap\n", ["line 2", "'input_price_per_mtok' must be a number", "'cheap'"]),
        ("id,model,output_price_per_mtok\nm1,x,-1\n", ["line 2", "must not be negative"]),
        ("id,model\nm1,\n", ["line 2", "'model' is empty"]),
        ("id,model\nm1,a\nm1,b\n", ["line 3", "duplicate id 'm1'"]),
    ],
)
def test_model_csv_errors(data_root: Path, csv_text: str, expected: list[str]) -> None:
    write(data_root / "1_raw" / "llm_models.csv", csv_text)
    with pytest.raises(CatalogError) as info:
        load_models(data_root)
    for fragment in expected:
        assert fragment in str(info.value)


def test_concepts_and_descriptions(data_root: Path) -> None:
    write(data_root / "1_raw" / "concepts_metadata.csv", "concept_id,name,domain\nc1,Concept One,art\n")
    write(data_root / "1_raw" / "concepts" / "descriptions-sentence" / "c1.txt", "  One sentence.\n")
    concepts = load_concepts(data_root)
    assert concepts["c1"].name == "Concept One" and concepts["c1"].extra == {"domain": "art"}
    assert load_concept_description(data_root, "c1", "sentence") == "One sentence."
    with pytest.raises(CatalogError, match=r"'c1' at level 'paragraph' not found: .*descriptions-paragraph/c1\.txt"):
        load_concept_description(data_root, "c1", "paragraph")
    with pytest.raises(CatalogError, match="unknown description level 'tweet'"):
        load_concept_description(data_root, "c1", "tweet")
    write(data_root / "1_raw" / "concepts" / "descriptions-article" / "c1.txt", "\n")
    with pytest.raises(CatalogError, match="is empty"):
        load_concept_description(data_root, "c1", "article")


def test_concepts_require_name(data_root: Path) -> None:
    write(data_root / "1_raw" / "concepts_metadata.csv", "concept_id,name\nc1,\n")
    with pytest.raises(CatalogError, match=r"line 2: column 'name' is empty"):
        load_concepts(data_root)


def test_load_catalogs_tolerates_missing_stage_catalogs(data_root: Path) -> None:
    write(data_root / "1_raw" / "draft_templates.csv", "template_id\nd1\n")
    catalogs = load_catalogs(data_root)
    assert list(catalogs.templates["draft"]) == ["d1"]
    assert catalogs.templates["essay"] == {} and catalogs.models == {} and catalogs.concepts == {}
    with pytest.raises(CatalogError, match="concept catalog not found"):
        load_catalogs(data_root, require_concepts=True)


def test_demo_catalogs_are_complete(tmp_path: Path) -> None:
    """The shipped demo data loads cleanly and every file a template or concept needs exists."""
    root = tmp_path / "data"
    shutil.copytree(REPO_DATA / "1_raw", root / "1_raw")
    catalogs = load_catalogs(root)
    assert len(catalogs.concepts) >= 10
    for concept_id in catalogs.concepts:
        for level in ("sentence", "paragraph"):
            assert len(load_concept_description(root, concept_id, level)) > 40
    for stage in STAGES:
        assert len(catalogs.templates[stage]) == 2
        for template_id in catalogs.templates[stage]:
            assert load_template_text(root, stage, template_id).strip()
    parsers = {t.parser for t in catalogs.iter_templates()}
    assert {"essay_idea_last", "identity", "in_last_line", "final_score"} <= parsers
    assert [t.template_id for t in catalogs.templates["essay"].values() if t.generator == "copy"] == ["essay-copy"]
    offline = catalogs.models["offline"]
    assert (offline.model, offline.provider, offline.input_price_per_mtok, offline.output_price_per_mtok) == (
        "offline-synthetic",
        "offline",
        0.0,
        0.0,
    )
    paid = [m for m in catalogs.models.values() if m.provider == "openrouter"]
    assert len(paid) >= 2 and all(m.input_price_per_mtok and m.output_price_per_mtok for m in paid)
    assert "SCORE: <0-10>" in load_template_text(root, "evaluation", "eval-rubric")
    assert '<essay-idea stage="1">' in load_template_text(root, "draft", "links-ideas")
    assert "{{ draft_block }}" in load_template_text(root, "essay", "essay-expand")
