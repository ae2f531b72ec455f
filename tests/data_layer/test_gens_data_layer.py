"""``GensDataLayer`` on a real temporary data root: round trips, errors, id safety, reuse
decisions (force), downstream clearing and the directory utilities."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from daydreaming_dagster.data_layer import GensDataLayer, resolve_generation_metadata

GEN = "d_round1"
UNICODE_TEXT = "Idées reçues — naïve café ✓\n日本語のテキスト\nemoji: 🌀🧠✨\n"


@pytest.fixture
def layer(data_root: Path) -> GensDataLayer:
    """A data layer over the per-test empty data root."""
    return GensDataLayer.from_root(data_root)


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (``None`` for directories)."""
    return {
        str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
    }


def _files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def _populate(layer: GensDataLayer, stage: str = "draft", gen_id: str = GEN) -> None:
    """Write every artefact of one generation, in pipeline order."""
    layer.write_main_metadata(stage, gen_id, {"template_id": "t1", "mode": "llm"})
    layer.write_prompt(stage, gen_id, "the prompt")
    layer.write_raw(stage, gen_id, "the raw output")
    layer.write_raw_metadata(stage, gen_id, {"finish_reason": "stop"})
    layer.append_raw_failure(stage, gen_id, "attempt 1: truncated")
    layer.write_parsed(stage, gen_id, "the parsed output")
    layer.write_parsed_metadata(stage, gen_id, {"success": True})


# -- construction ----------------------------------------------------------------------------


def test_the_layer_holds_its_root_and_whether_it_fsyncs(data_root: Path) -> None:
    layer = GensDataLayer.from_root(str(data_root))
    assert [f.name for f in dataclasses.fields(layer)] == ["data_root", "fsync_writes"]
    assert layer.data_root == data_root and layer.fsync_writes
    deferred = layer.deferred()
    assert deferred.data_root == data_root and not deferred.fsync_writes
    assert GensDataLayer.from_root(data_root) == layer
    with pytest.raises(dataclasses.FrozenInstanceError):
        layer.data_root = data_root / "other"  # type: ignore[misc]


def test_paths_point_into_the_gens_store(layer: GensDataLayer, data_root: Path) -> None:
    gen = data_root / "gens" / "evaluation" / "v_1"
    assert layer.generation_dir("evaluation", "v_1") == gen
    assert layer.prompt_path("evaluation", "v_1") == gen / "prompt.txt"
    assert layer.raw_path("evaluation", "v_1") == gen / "raw.txt"
    assert layer.parsed_path("evaluation", "v_1") == gen / "parsed.txt"
    assert layer.main_metadata_path("evaluation", "v_1") == gen / "metadata.json"
    assert layer.raw_metadata_path("evaluation", "v_1") == gen / "raw_metadata.json"
    assert layer.parsed_metadata_path("evaluation", "v_1") == gen / "parsed_metadata.json"
    assert layer.raw_failure_log_path("evaluation", "v_1") == gen / "raw_failure.log"


# -- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("artefact", ["prompt", "raw", "parsed"])
def test_text_round_trip_is_byte_exact_utf8(layer: GensDataLayer, artefact: str) -> None:
    write = getattr(layer, f"write_{artefact}")
    read = getattr(layer, f"read_{artefact}")
    # CRLF and a missing final newline must survive: no newline translation on either side.
    text = UNICODE_TEXT + "windows line\r\nno final newline"
    path = write("essay", "e_1", text)
    assert path == getattr(layer, f"{artefact}_path")("essay", "e_1")
    assert read("essay", "e_1") == text
    assert path.read_bytes() == text.encode("utf-8")


def test_empty_text_round_trip(layer: GensDataLayer) -> None:
    layer.write_parsed("draft", GEN, "")
    assert layer.read_parsed("draft", GEN) == ""
    assert layer.parsed_path("draft", GEN).stat().st_size == 0


@pytest.mark.parametrize("kind", ["main", "raw", "parsed"])
def test_metadata_round_trip(layer: GensDataLayer, kind: str) -> None:
    metadata: dict[str, Any] = {
        "template_id": "créatif-🌀",
        "replicate": 2,
        "score": 7.5,
        "reused": False,
        "parent_gen_id": None,
        "usage": {"prompt_tokens": 10, "completion_tokens": 20},
        "tags": ["a", "b"],
    }
    path = getattr(layer, f"write_{kind}_metadata")("evaluation", "v_1", metadata)
    assert path == getattr(layer, f"{kind}_metadata_path")("evaluation", "v_1")
    assert getattr(layer, f"read_{kind}_metadata")("evaluation", "v_1") == metadata


def test_metadata_file_is_pretty_sorted_utf8_json(layer: GensDataLayer) -> None:
    path = layer.write_main_metadata(
        "draft", GEN, {"zeta": 1, "alpha": "café 🌀", "nested": {"b": [1, 2], "a": None}}
    )
    expected = (
        "{\n"
        '  "alpha": "café 🌀",\n'
        '  "nested": {\n'
        '    "a": null,\n'
        '    "b": [\n'
        "      1,\n"
        "      2\n"
        "    ]\n"
        "  },\n"
        '  "zeta": 1\n'
        "}\n"
    )
    # Non-ASCII is written as UTF-8, not as \\u escapes, so files stay readable by a person.
    assert path.read_bytes() == expected.encode("utf-8")


def test_metadata_must_be_a_dict(layer: GensDataLayer, data_root: Path) -> None:
    with pytest.raises(TypeError, match="must be a dict, got list"):
        layer.write_raw_metadata("draft", GEN, [1, 2])  # type: ignore[arg-type]
    assert _snapshot(data_root) == {}


def test_raw_failure_log_appends_lines(layer: GensDataLayer) -> None:
    path = layer.append_raw_failure("draft", GEN, "attempt 1: truncated (finish_reason=length)")
    layer.append_raw_failure("draft", GEN, "attempt 2: only 2 lines — need 3 🌀\n")
    assert path == layer.raw_failure_log_path("draft", GEN)
    assert layer.read_raw_failure_log("draft", GEN) == (
        "attempt 1: truncated (finish_reason=length)\nattempt 2: only 2 lines — need 3 🌀\n"
    )


def test_write_replaces_previous_content(layer: GensDataLayer) -> None:
    layer.write_raw("draft", GEN, "a much longer first version of the raw output\n" * 50)
    layer.write_raw("draft", GEN, "short")
    assert layer.raw_path("draft", GEN).read_bytes() == b"short"
    layer.write_raw_metadata("draft", GEN, {"a": "x" * 1000, "b": 2})
    layer.write_raw_metadata("draft", GEN, {"c": 3})
    assert layer.read_raw_metadata("draft", GEN) == {"c": 3}


# -- missing and malformed files -------------------------------------------------------------

READERS = [
    ("read_prompt", "prompt_path"),
    ("read_raw", "raw_path"),
    ("read_parsed", "parsed_path"),
    ("read_main_metadata", "main_metadata_path"),
    ("read_raw_metadata", "raw_metadata_path"),
    ("read_parsed_metadata", "parsed_metadata_path"),
    ("read_raw_failure_log", "raw_failure_log_path"),
]


@pytest.mark.parametrize(("reader", "path_helper"), READERS)
@pytest.mark.parametrize("generation_exists", [False, True])
def test_missing_file_names_its_path(
    layer: GensDataLayer, reader: str, path_helper: str, generation_exists: bool
) -> None:
    if generation_exists:
        layer.reserve_generation("essay", "e_1")
    with pytest.raises(FileNotFoundError) as info:
        getattr(layer, reader)("essay", "e_1")
    assert str(getattr(layer, path_helper)("essay", "e_1")) in str(info.value)


def test_directory_in_place_of_a_file_is_reported_as_missing(layer: GensDataLayer) -> None:
    layer.prompt_path("draft", GEN).mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="directory") as info:
        layer.read_prompt("draft", GEN)
    assert str(layer.prompt_path("draft", GEN)) in str(info.value)


METADATA_KINDS = ["main", "raw", "parsed"]


@pytest.mark.parametrize("kind", METADATA_KINDS)
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"template_id": "t1",', "malformed JSON"),
        ("", "malformed JSON"),
        ("not json at all", "malformed JSON"),
        ('["a", "b"]', "expected a JSON object"),
        ('"just a string"', "expected a JSON object"),
        ("42", "expected a JSON object"),
        ("null", "expected a JSON object"),
    ],
)
def test_bad_metadata_raises_value_error_naming_the_file(
    layer: GensDataLayer, kind: str, content: str, expected: str
) -> None:
    path = getattr(layer, f"{kind}_metadata_path")("draft", GEN)
    path.parent.mkdir(parents=True)
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=expected) as info:
        getattr(layer, f"read_{kind}_metadata")("draft", GEN)
    assert str(path) in str(info.value)


def test_invalid_utf8_raises_value_error_naming_the_file(layer: GensDataLayer) -> None:
    for path, reader in (
        (layer.raw_path("draft", GEN), layer.read_raw),
        (layer.main_metadata_path("draft", GEN), layer.read_main_metadata),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b'{"a": "\xff\xfe"}')
        with pytest.raises(ValueError, match="not valid UTF-8") as info:
            reader("draft", GEN)
        assert str(path) in str(info.value)


# -- unsafe ids and unknown stages: rejected before any path is built -------------------------

UNSAFE_IDS = [
    "../x",
    "a/b",
    "/abs",
    "",
    "a\x00b",
    ".",
    "..",
    "a" * 129,
    "café",
    "ｄ_fullwidth",
    " ",
    "a b",
    " d_x",
    "d_x ",
    "d_x\n",
    "\t",
    "a\\b",
    "-leading-dash",
    "_leading_underscore",
    None,
    123,
]

# Every public method that takes a gen_id, with the extra arguments it needs.
GEN_ID_METHODS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("generation_dir", (), {}),
    ("prompt_path", (), {}),
    ("raw_path", (), {}),
    ("parsed_path", (), {}),
    ("main_metadata_path", (), {}),
    ("raw_metadata_path", (), {}),
    ("parsed_metadata_path", (), {}),
    ("raw_failure_log_path", (), {}),
    ("reserve_generation", (), {}),
    ("reserve_generation", (), {"create": False}),
    ("exists", (), {}),
    ("delete_generation", (), {}),
    ("prompt_exists", (), {}),
    ("prompt_exists", (), {"force": True}),
    ("prompt_matches", ("text",), {}),
    ("prompt_matches", ("text",), {"force": True}),
    ("raw_exists", (), {}),
    ("raw_exists", (), {"force": True}),
    ("raw_exists", (), {"served_by": lambda model_id: "openrouter"}),
    ("parsed_exists", (), {}),
    ("parsed_exists", (), {"force": True}),
    ("write_prompt", ("text",), {}),
    ("store_prompt", ("text",), {}),
    ("store_prompt", ("text",), {"force": True}),
    ("write_raw", ("text",), {}),
    ("write_parsed", ("text",), {}),
    ("write_main_metadata", ({"template_id": "t"},), {}),
    ("create_main_metadata", ({"template_id": "t"},), {}),
    ("write_raw_metadata", ({"a": 1},), {}),
    ("write_parsed_metadata", ({"a": 1},), {}),
    ("append_raw_failure", ("line",), {}),
    ("clear_raw", (), {}),
    ("clear_parsed", (), {}),
    ("record_blocked", (), {"phase": "raw", "reason": "template", "error": "e", "details": {}}),
    ("record_blocked", (), {"phase": "parsed", "reason": "config", "error": "e", "details": {}}),
    ("read_prompt", (), {}),
    ("read_raw", (), {}),
    ("read_parsed", (), {}),
    ("read_main_metadata", (), {}),
    ("read_raw_metadata", (), {}),
    ("read_parsed_metadata", (), {}),
    ("read_raw_failure_log", (), {}),
    ("stored_outcome", (), {}),
]


def _method_id(entry: tuple[str, tuple[Any, ...], dict[str, Any]]) -> str:
    name, _, kwargs = entry
    return name + "".join(f"[{k}={v}]" for k, v in kwargs.items())


def _call(
    layer: GensDataLayer,
    entry: tuple[str, tuple[Any, ...], dict[str, Any]],
    stage: Any,
    gen_id: Any,
) -> Callable[[], Any]:
    name, args, kwargs = entry
    if name == "resolve_generation_metadata":
        return lambda: resolve_generation_metadata(layer, stage, gen_id)
    return lambda: getattr(layer, name)(stage, gen_id, *args, **kwargs)


ALL_GEN_ID_CALLS = [*GEN_ID_METHODS, ("resolve_generation_metadata", (), {})]


def test_method_table_covers_every_public_gen_id_method() -> None:
    """Guard: a new public method taking ``gen_id`` must join the safety tests below."""
    import inspect

    public = {
        name
        for name, member in inspect.getmembers(GensDataLayer, inspect.isfunction)
        if not name.startswith("_") and "gen_id" in inspect.signature(member).parameters
    }
    assert public == {name for name, _, _ in GEN_ID_METHODS}


@pytest.fixture
def populated_root(data_root: Path, layer: GensDataLayer) -> Path:
    """A data root holding real generations and a file beside it, so a path escape would
    have something to overwrite or delete."""
    _populate(layer, "draft", "d_keep")
    _populate(layer, "essay", "e_keep")
    (data_root.parent / "x").write_text("outside the data root", encoding="utf-8")
    (data_root / "gens" / "x").write_text("inside gens", encoding="utf-8")
    return data_root.parent


@pytest.mark.parametrize("entry", ALL_GEN_ID_CALLS, ids=_method_id)
@pytest.mark.parametrize("bad_id", UNSAFE_IDS, ids=repr)
def test_unsafe_gen_id_is_rejected_and_touches_nothing(
    layer: GensDataLayer, populated_root: Path, entry: Any, bad_id: Any
) -> None:
    before = _snapshot(populated_root)
    with pytest.raises(ValueError, match="invalid gen_id"):
        _call(layer, entry, "draft", bad_id)()
    assert _snapshot(populated_root) == before


@pytest.mark.parametrize("entry", ALL_GEN_ID_CALLS, ids=_method_id)
@pytest.mark.parametrize("bad_stage", ["drafts", "", "../draft", "draft/..", "Essay", None])
def test_unknown_stage_is_rejected_and_touches_nothing(
    layer: GensDataLayer, populated_root: Path, entry: Any, bad_stage: Any
) -> None:
    before = _snapshot(populated_root)
    with pytest.raises(ValueError, match="unknown stage"):
        _call(layer, entry, bad_stage, "d_keep")()
    assert _snapshot(populated_root) == before


def test_list_generations_rejects_unknown_stage(layer: GensDataLayer) -> None:
    with pytest.raises(ValueError, match="unknown stage"):
        layer.list_generations("../gens")  # type: ignore[arg-type]


def test_longest_allowed_id_works(layer: GensDataLayer) -> None:
    longest = "d" * 128
    layer.write_prompt("draft", longest, "ok")
    assert layer.read_prompt("draft", longest) == "ok"
    assert layer.list_generations("draft") == [longest]


# -- reuse decisions (force) -----------------------------------------------------------------


def test_prompt_exists(layer: GensDataLayer) -> None:
    assert not layer.prompt_exists("draft", GEN)
    layer.write_prompt("draft", GEN, "p")
    assert layer.prompt_exists("draft", GEN)
    assert not layer.prompt_exists("draft", GEN, force=True)


@pytest.mark.parametrize("phase", ["raw", "parsed"])
def test_output_exists_needs_text_and_metadata(layer: GensDataLayer, phase: str) -> None:
    exists = getattr(layer, f"{phase}_exists")
    assert not exists("draft", GEN)
    getattr(layer, f"write_{phase}")("draft", GEN, "text")
    assert not exists("draft", GEN), "text without metadata is not a finished artefact"
    getattr(layer, f"write_{phase}_metadata")("draft", GEN, {"success": True})
    assert exists("draft", GEN)
    assert not exists("draft", GEN, force=True)
    getattr(layer, f"{phase}_path")("draft", GEN).unlink()
    assert not exists("draft", GEN), "metadata without text is not a finished artefact"


@pytest.mark.parametrize("phase", ["raw", "parsed"])
@pytest.mark.parametrize(
    ("metadata_text", "reusable"),
    [
        ('{"failed": true}', False),
        ('{"failed": true, "error": "truncated"}', False),
        ('{"failed": false}', True),
        ('{"success": true}', True),
        ('{"failed": ', False),
        ("[1, 2]", False),
        ("", False),
    ],
)
def test_output_exists_rejects_failed_or_unreadable_metadata(
    layer: GensDataLayer, phase: str, metadata_text: str, reusable: bool
) -> None:
    getattr(layer, f"write_{phase}")("draft", GEN, "text")
    getattr(layer, f"{phase}_metadata_path")("draft", GEN).write_text(
        metadata_text, encoding="utf-8"
    )
    assert getattr(layer, f"{phase}_exists")("draft", GEN) is reusable
    assert getattr(layer, f"{phase}_exists")("draft", GEN, force=True) is False


def _age(path: Path) -> int:
    """Push a file's mtime an hour back so a rewrite is detectable on coarse clocks."""
    old = path.stat().st_mtime_ns - 3600 * 10**9
    os.utime(path, ns=(old, old))
    return old


def test_store_prompt_reuses_identical_text_without_rewriting(layer: GensDataLayer) -> None:
    assert layer.store_prompt("draft", GEN, UNICODE_TEXT) is False  # first write
    layer.write_raw("draft", GEN, "raw")
    layer.write_raw_metadata("draft", GEN, {"finish_reason": "stop"})
    layer.write_parsed("draft", GEN, "parsed")
    layer.write_parsed_metadata("draft", GEN, {"success": True})
    old_mtime = _age(layer.prompt_path("draft", GEN))
    gen_dir = layer.generation_dir("draft", GEN)
    before = _snapshot(gen_dir)

    assert layer.store_prompt("draft", GEN, UNICODE_TEXT) is True
    assert layer.prompt_path("draft", GEN).stat().st_mtime_ns == old_mtime
    assert _snapshot(gen_dir) == before  # raw and parsed kept


def test_store_prompt_with_changed_text_replaces_and_clears(layer: GensDataLayer) -> None:
    _populate(layer)
    assert layer.store_prompt("draft", GEN, "a different prompt") is False
    assert layer.read_prompt("draft", GEN) == "a different prompt"
    assert _files(layer.generation_dir("draft", GEN)) == {
        "prompt.txt",
        "metadata.json",
        "raw_failure.log",
    }


def test_store_prompt_forced_rewrites_identical_text(layer: GensDataLayer) -> None:
    _populate(layer)
    old_mtime = _age(layer.prompt_path("draft", GEN))
    assert layer.store_prompt("draft", GEN, "the prompt", force=True) is False
    assert layer.prompt_path("draft", GEN).stat().st_mtime_ns != old_mtime
    assert not layer.raw_exists("draft", GEN)
    assert not layer.parsed_path("draft", GEN).exists()


# -- downstream clearing ---------------------------------------------------------------------


def test_write_prompt_clears_raw_and_parsed(layer: GensDataLayer) -> None:
    _populate(layer)
    assert _files(layer.generation_dir("draft", GEN)) == {
        "metadata.json",
        "prompt.txt",
        "raw.txt",
        "raw_metadata.json",
        "raw_failure.log",
        "parsed.txt",
        "parsed_metadata.json",
    }
    layer.write_prompt("draft", GEN, "new prompt")
    assert _files(layer.generation_dir("draft", GEN)) == {
        "metadata.json",
        "prompt.txt",
        "raw_failure.log",
    }
    assert layer.read_prompt("draft", GEN) == "new prompt"
    assert layer.read_main_metadata("draft", GEN) == {"template_id": "t1", "mode": "llm"}
    assert layer.read_raw_failure_log("draft", GEN) == "attempt 1: truncated\n"


def test_write_raw_clears_parsed_only(layer: GensDataLayer) -> None:
    _populate(layer)
    layer.write_raw("draft", GEN, "new raw")
    assert _files(layer.generation_dir("draft", GEN)) == {
        "metadata.json",
        "prompt.txt",
        "raw.txt",
        "raw_metadata.json",
        "raw_failure.log",
    }
    assert layer.read_prompt("draft", GEN) == "the prompt"
    assert layer.read_raw("draft", GEN) == "new raw"


def test_parsed_and_metadata_writes_clear_nothing(layer: GensDataLayer) -> None:
    _populate(layer)
    gen_dir = layer.generation_dir("draft", GEN)
    names = _files(gen_dir)
    layer.write_parsed("draft", GEN, "again")
    layer.write_main_metadata("draft", GEN, {"template_id": "t2"})
    layer.write_raw_metadata("draft", GEN, {"finish_reason": "stop"})
    layer.write_parsed_metadata("draft", GEN, {"success": True})
    layer.append_raw_failure("draft", GEN, "another line")
    assert _files(gen_dir) == names


def test_clearing_only_touches_its_own_generation(layer: GensDataLayer) -> None:
    _populate(layer, "draft", "d_a")
    _populate(layer, "draft", "d_b")
    _populate(layer, "essay", "d_a")  # same id in another stage is another generation
    other_before = _snapshot(layer.generation_dir("draft", "d_b"))
    essay_before = _snapshot(layer.generation_dir("essay", "d_a"))
    layer.write_prompt("draft", "d_a", "changed")
    assert _snapshot(layer.generation_dir("draft", "d_b")) == other_before
    assert _snapshot(layer.generation_dir("essay", "d_a")) == essay_before


def test_clear_helpers(layer: GensDataLayer) -> None:
    _populate(layer)
    gen_dir = layer.generation_dir("draft", GEN)
    layer.clear_parsed("draft", GEN)
    assert "parsed.txt" not in _files(gen_dir) and "raw.txt" in _files(gen_dir)
    layer.clear_raw("draft", GEN)
    assert _files(gen_dir) == {"metadata.json", "prompt.txt", "raw_failure.log"}
    layer.clear_raw("draft", GEN)  # clearing what is already gone is fine
    layer.clear_parsed("draft", "d_never_written")
    assert not layer.exists("draft", "d_never_written")


# -- directory utilities ---------------------------------------------------------------------


def test_reserve_and_exists(layer: GensDataLayer, data_root: Path) -> None:
    assert not layer.exists("essay", "e_1")
    path = layer.reserve_generation("essay", "e_1", create=False)
    assert path == data_root / "gens" / "essay" / "e_1"
    assert _snapshot(data_root) == {}  # create=False builds the path only
    assert not layer.exists("essay", "e_1")

    assert layer.reserve_generation("essay", "e_1") == path
    assert path.is_dir() and layer.exists("essay", "e_1")
    layer.write_prompt("essay", "e_1", "kept")
    assert layer.reserve_generation("essay", "e_1") == path  # idempotent, keeps contents
    assert layer.read_prompt("essay", "e_1") == "kept"
    assert not layer.exists("draft", "e_1")


def test_exists_is_false_for_a_stray_file(layer: GensDataLayer, data_root: Path) -> None:
    stage_dir = data_root / "gens" / "draft"
    stage_dir.mkdir(parents=True)
    (stage_dir / "d_file").write_text("not a generation", encoding="utf-8")
    assert not layer.exists("draft", "d_file")


def test_list_generations_sorted_and_ignores_strays(layer: GensDataLayer, data_root: Path) -> None:
    assert layer.list_generations("draft") == []  # no gens dir at all
    for gen_id in ("d_c", "d_a", "D_b", "d_10", "d_9"):
        layer.reserve_generation("draft", gen_id)
    layer.reserve_generation("essay", "e_other")
    stage_dir = data_root / "gens" / "draft"
    (stage_dir / "notes.txt").write_text("stray file", encoding="utf-8")
    (stage_dir / "d_file").write_text("a file with a valid name", encoding="utf-8")
    for bad in (".hidden", "_tmp", "has space", "-dash", "ünïcode"):
        (stage_dir / bad).mkdir()
    assert layer.list_generations("draft") == ["D_b", "d_10", "d_9", "d_a", "d_c"]
    assert layer.list_generations("essay") == ["e_other"]
    assert layer.list_generations("evaluation") == []


def test_delete_generation(layer: GensDataLayer, data_root: Path) -> None:
    _populate(layer, "draft", "d_gone")
    _populate(layer, "draft", "d_kept")
    kept = _snapshot(layer.generation_dir("draft", "d_kept"))
    assert layer.delete_generation("draft", "d_gone") is True
    assert not layer.exists("draft", "d_gone")
    assert not (data_root / "gens" / "draft" / "d_gone").exists()
    assert layer.delete_generation("draft", "d_gone") is False
    assert layer.delete_generation("essay", "d_kept") is False  # other stage: nothing there
    assert _snapshot(layer.generation_dir("draft", "d_kept")) == kept
    assert layer.list_generations("draft") == ["d_kept"]


def test_stored_outcome_says_parsed_failed_or_pending(layer: GensDataLayer) -> None:
    """What later decisions (adaptive rounds, gates, tournament rounds) read of a generation."""
    assert layer.stored_outcome("comparison", "p_new") == ("pending", None)
    layer.write_raw("comparison", "p_new", "WINNER: A\n")
    layer.write_raw_metadata("comparison", "p_new", {"success": True})
    assert layer.stored_outcome("comparison", "p_new") == ("pending", None)  # raw, not parsed yet
    layer.write_parsed("comparison", "p_new", "A")
    layer.write_parsed_metadata("comparison", "p_new", {"success": True, "details": {"verdict": "A"}})
    assert layer.stored_outcome("comparison", "p_new") == ("parsed", {"success": True, "details": {"verdict": "A"}})
    layer.write_parsed_metadata("comparison", "p_new", {"success": False, "failed": True})
    assert layer.stored_outcome("comparison", "p_new") == ("failed", None)  # a rejected parse
    layer.write_raw_metadata("essay", "e_bad", {"failed": True, "failure_reason": "truncated"})
    assert layer.stored_outcome("essay", "e_bad") == ("failed", None)  # a rejected raw output
