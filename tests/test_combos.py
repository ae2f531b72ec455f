"""Content combinations: deterministic ids, the append-only registry, hydration."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from daydreaming_dagster.combos import (
    ComboRequest,
    combo_id_for,
    k_combinations,
    load_combinations,
    read_combo_mappings,
    register_combination,
    register_combinations,
    registered_combo_ids,
)
from daydreaming_dagster.errors import CatalogError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def concept_root(data_root: Path) -> Path:
    """Three concepts with sentence and paragraph descriptions."""
    write(data_root / "1_raw" / "concepts_metadata.csv", "concept_id,name\nalpha,Alpha\nbeta,Beta\ngamma,Gamma\n")
    for cid in ("alpha", "beta", "gamma"):
        write(data_root / "1_raw" / "concepts" / "descriptions-sentence" / f"{cid}.txt", f"{cid} in a sentence.\n")
        write(data_root / "1_raw" / "concepts" / "descriptions-paragraph" / f"{cid}.txt", f"{cid} in a paragraph.\n")
    return data_root


def test_k_combinations() -> None:
    assert k_combinations(["a", "b", "c"], 2) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert k_combinations(["c", "a", "c", "b"], 3) == [("c", "a", "b")]
    assert len(k_combinations([f"c{i}" for i in range(8)], 3)) == 56
    for bad in (0, 4, "2", True):
        with pytest.raises(ValueError, match="between 1 and 3"):
            k_combinations(["a", "b", "c"], bad)  # type: ignore[arg-type]


def test_register_appends_one_row_per_concept_and_is_idempotent(concept_root: Path) -> None:
    combo_id = register_combination(concept_root, ["beta", "alpha"], "paragraph", 2)
    assert combo_id == combo_id_for(["alpha", "beta"], "paragraph", 2)
    path = concept_root / "combo_mappings.csv"
    lines = path.read_text().splitlines()
    assert lines[0] == "combo_id,version,concept_id,description_level,k_max,created_at"
    assert [line.split(",")[:5] for line in lines[1:]] == [
        [combo_id, "v1", "alpha", "paragraph", "2"],
        [combo_id, "v1", "beta", "paragraph", "2"],
    ]
    before = path.read_bytes(), path.stat().st_mtime_ns
    assert register_combination(concept_root, ["alpha", "beta"], "paragraph", 2) == combo_id
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    # Same concepts at another level or k_max are another combination.
    other = register_combination(concept_root, ["alpha", "beta"], "sentence", 2)
    wider = register_combination(concept_root, ["alpha", "beta"], "sentence", 3)
    assert len({combo_id, other, wider}) == 3
    assert registered_combo_ids(concept_root) == [combo_id, other, wider]


def test_batch_registration_keeps_existing_rows_and_column_order(concept_root: Path) -> None:
    # An older registry with its columns in another order: new rows follow its header.
    write(
        concept_root / "combo_mappings.csv",
        "concept_id,combo_id,k_max,description_level,version,created_at\nalpha,legacy_1,1,sentence,v0,2024-01-01\n",
    )
    ids = register_combinations(
        concept_root,
        [ComboRequest(("alpha", "gamma"), "sentence", 2), ComboRequest(("beta", "gamma"), "sentence", 2)],
    )
    text = (concept_root / "combo_mappings.csv").read_text().splitlines()
    assert text[1] == "alpha,legacy_1,1,sentence,v0,2024-01-01"
    assert text[2].startswith(f"alpha,{ids[0]},2,sentence,v1,")
    records = read_combo_mappings(concept_root)
    assert list(records) == ["legacy_1", *ids]
    assert records[ids[1]].concept_ids == ("beta", "gamma")


def test_collision_with_different_contents_is_an_error(concept_root: Path) -> None:
    combo_id = combo_id_for(["alpha", "beta"], "sentence", 2)
    # Someone registered that id for other concepts (hand edit, or a digest collision).
    write(
        concept_root / "combo_mappings.csv",
        f"combo_id,version,concept_id,description_level,k_max,created_at\n{combo_id},v1,gamma,sentence,2,x\n",
    )
    before = (concept_root / "combo_mappings.csv").read_bytes()
    with pytest.raises(CatalogError) as info:
        register_combination(concept_root, ["alpha", "beta"], "sentence", 2)
    assert "collision" in str(info.value) and combo_id in str(info.value) and "line 2" in str(info.value)
    assert (concept_root / "combo_mappings.csv").read_bytes() == before


@pytest.mark.parametrize(
    ("concepts", "level", "k_max", "message"),
    [
        (["alpha"], "tweet", 1, "unknown description level 'tweet'"),
        (["alpha", "beta", "gamma"], "sentence", 2, "k_max=2 is smaller than the 3 concepts"),
        ([], "sentence", 2, "needs non-empty concept ids"),
    ],
)
def test_register_rejects_bad_requests(concept_root: Path, concepts: list[str], level: str, k_max: int, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        register_combination(concept_root, concepts, level, k_max)
    assert not (concept_root / "combo_mappings.csv").exists()


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("c1,v1,alpha,sentence,2,x\nc1,v1,beta,paragraph,2,x\n", "line 3: combo 'c1' has description_level='paragraph'"),
        ("c1,v1,alpha,sentence,2,x\nc1,v1,alpha,sentence,2,x\n", "line 3: concept 'alpha' listed twice"),
        ("c1,v1,alpha,sentence,two,x\n", "line 2: k_max must be an integer, got 'two'"),
        ("c1,v1,,sentence,2,x\n", "line 2: column 'concept_id' is empty"),
    ],
)
def test_malformed_registry_names_the_line(concept_root: Path, rows: str, message: str) -> None:
    write(concept_root / "combo_mappings.csv", "combo_id,version,concept_id,description_level,k_max,created_at\n" + rows)
    with pytest.raises(CatalogError, match=message):
        read_combo_mappings(concept_root)


def test_load_combinations_hydrates_names_and_level(concept_root: Path) -> None:
    first = register_combination(concept_root, ["gamma", "alpha"], "paragraph", 2)
    second = register_combination(concept_root, ["beta"], "sentence", 1)
    combos = load_combinations(concept_root)
    assert list(combos) == [first, second]
    combo = combos[first]
    assert combo.description_level == "paragraph" and combo.k_max == 2
    assert combo.concept_ids == ("alpha", "gamma")
    assert combo.contents == [
        {"concept_id": "alpha", "name": "Alpha", "content": "alpha in a paragraph."},
        {"concept_id": "gamma", "name": "Gamma", "content": "gamma in a paragraph."},
    ]
    assert list(load_combinations(concept_root, [second])) == [second]
    assert load_combinations(concept_root, []) == {}


def test_load_combinations_errors(concept_root: Path) -> None:
    combo_id = register_combination(concept_root, ["alpha"], "sentence", 1)
    with pytest.raises(CatalogError, match="unknown combo id\\(s\\) nope, nada"):
        load_combinations(concept_root, [combo_id, "nope", "nada"])
    os.remove(concept_root / "1_raw" / "concepts" / "descriptions-sentence" / "alpha.txt")
    with pytest.raises(CatalogError, match=f"combo '{combo_id}'.*descriptions-sentence/alpha.txt"):
        load_combinations(concept_root, [combo_id])
    write(concept_root / "1_raw" / "concepts_metadata.csv", "concept_id,name\nbeta,Beta\n")
    with pytest.raises(CatalogError, match="uses concept 'alpha', which is not in concepts_metadata.csv"):
        load_combinations(concept_root, [combo_id])


def _register_many(root: str, offset: int) -> None:
    for i in range(15):
        register_combination(root, [f"c{offset}-{i}"], "sentence", 1)


def test_concurrent_registration_loses_no_rows(data_root: Path) -> None:
    """Two processes appending at once: the lock keeps every row."""
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_register_many, args=(str(data_root), n)) for n in (1, 2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert len(read_combo_mappings(data_root)) == 30
