"""Atomic writes: a crash between the temporary write and the rename leaves the previous
content (or nothing) and no temporary file; the error propagates to the caller."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from daydreaming_dagster.data_layer import GensDataLayer, _storage

GEN = "d_atomic"


class SimulatedCrash(OSError):
    """Raised in place of the rename, as a full disk or a killed process would interrupt it."""


@pytest.fixture
def layer(data_root: Path) -> GensDataLayer:
    """A data layer over the per-test empty data root."""
    return GensDataLayer.from_root(data_root)


class CrashOnRename:
    """Stands in for ``os.replace``: records each temporary file (name, bytes) as it was at
    that moment, which proves the whole new content was written before the crash, then fails."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []

    def __call__(self, src: str, dst: Any) -> None:
        self.seen.append((src, Path(src).read_bytes()))
        raise SimulatedCrash(f"simulated crash before renaming onto {dst}")


Writer = Callable[[GensDataLayer, str], Path]

# (name, write with a payload, expected bytes on disk for that payload)
WRITERS: list[tuple[str, Writer, Callable[[str], bytes]]] = [
    ("prompt", lambda lay, t: lay.write_prompt("draft", GEN, t), lambda t: t.encode()),
    ("raw", lambda lay, t: lay.write_raw("draft", GEN, t), lambda t: t.encode()),
    ("parsed", lambda lay, t: lay.write_parsed("draft", GEN, t), lambda t: t.encode()),
    (
        "main_metadata",
        lambda lay, t: lay.write_main_metadata("draft", GEN, {"text": t}),
        lambda t: _storage.dump_json({"text": t}).encode(),
    ),
    (
        "raw_metadata",
        lambda lay, t: lay.write_raw_metadata("draft", GEN, {"text": t}),
        lambda t: _storage.dump_json({"text": t}).encode(),
    ),
    (
        "parsed_metadata",
        lambda lay, t: lay.write_parsed_metadata("draft", GEN, {"text": t}),
        lambda t: _storage.dump_json({"text": t}).encode(),
    ),
]
WRITER_IDS = [w[0] for w in WRITERS]

OLD = "old content — complete 🌀\n" * 20
NEW = "new content that never lands ✨\n" * 30


@pytest.mark.parametrize(("name", "write", "encode"), WRITERS, ids=WRITER_IDS)
def test_crash_before_rename_keeps_old_content_and_no_temp_file(
    layer: GensDataLayer,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    write: Writer,
    encode: Callable[[str], bytes],
) -> None:
    target = write(layer, OLD)
    gen_dir = target.parent
    names_before = sorted(os.listdir(gen_dir))

    crash = CrashOnRename()
    monkeypatch.setattr(_storage, "_replace", crash)
    with pytest.raises(SimulatedCrash, match="simulated crash"):
        write(layer, NEW)

    assert target.read_bytes() == encode(OLD)
    assert sorted(os.listdir(gen_dir)) == names_before  # no temporary file left behind
    # The crash really happened between a complete temporary write and the rename.
    [(tmp_name, tmp_bytes)] = crash.seen
    assert Path(tmp_name).parent == gen_dir  # same directory, so the rename is atomic
    assert tmp_bytes == encode(NEW)
    assert not Path(tmp_name).exists()


@pytest.mark.parametrize(("name", "write", "encode"), WRITERS, ids=WRITER_IDS)
def test_crash_on_first_write_leaves_no_file(
    layer: GensDataLayer,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    write: Writer,
    encode: Callable[[str], bytes],
) -> None:
    crash = CrashOnRename()
    monkeypatch.setattr(_storage, "_replace", crash)
    with pytest.raises(SimulatedCrash):
        write(layer, NEW)
    gen_dir = layer.generation_dir("draft", GEN)
    assert os.listdir(gen_dir) == []  # neither the target nor a temporary file
    [(_, tmp_bytes)] = crash.seen
    assert tmp_bytes == encode(NEW)


def test_interrupt_is_cleaned_up_and_propagates(
    layer: GensDataLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A KeyboardInterrupt (not an Exception) during the rename must clean up too."""
    layer.write_raw("draft", GEN, OLD)

    def _interrupt(src: str, dst: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(_storage, "_replace", _interrupt)
    with pytest.raises(KeyboardInterrupt):
        layer.write_raw("draft", GEN, NEW)
    assert layer.read_raw("draft", GEN) == OLD
    assert sorted(os.listdir(layer.generation_dir("draft", GEN))) == ["raw.txt"]


def test_crashed_write_prompt_keeps_the_old_prompt(
    layer: GensDataLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new prompt clears raw/parsed before it lands: after a crash the old prompt remains and
    nothing derived from any prompt is left to be reused by mistake."""
    layer.write_prompt("draft", GEN, "old prompt")
    layer.write_raw("draft", GEN, "raw from old prompt")
    layer.write_raw_metadata("draft", GEN, {"finish_reason": "stop"})

    monkeypatch.setattr(_storage, "_replace", CrashOnRename())
    with pytest.raises(SimulatedCrash):
        layer.write_prompt("draft", GEN, "new prompt")
    assert layer.read_prompt("draft", GEN) == "old prompt"
    assert not layer.raw_exists("draft", GEN)
    assert sorted(os.listdir(layer.generation_dir("draft", GEN))) == ["prompt.txt"]


def test_new_content_replaces_old_fully(layer: GensDataLayer) -> None:
    target = layer.write_parsed("draft", GEN, "x" * 100_000)
    old_inode = target.stat().st_ino
    layer.write_parsed("draft", GEN, "short ✓")
    assert target.read_bytes() == "short ✓".encode()
    # Replaced by rename (a new inode), not rewritten in place where a reader could see a mix.
    assert target.stat().st_ino != old_inode
    assert sorted(os.listdir(target.parent)) == ["parsed.txt"]


def test_atomic_write_creates_missing_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "file.txt"
    _storage.atomic_write_text(target, "héllo")
    assert target.read_bytes() == "héllo".encode()


def test_written_files_get_ordinary_permissions(layer: GensDataLayer, tmp_path: Path) -> None:
    """Artefacts must be as readable as a file created with ``open`` (honouring the umask), so
    another user's process (a Dagster webserver, a reader of a shared data root) can read them;
    temporary files are created 0600 by default, which would leak onto the artefact."""
    reference = tmp_path / "reference.txt"
    reference.write_text("x", encoding="utf-8")
    expected = stat.S_IMODE(reference.stat().st_mode)
    for path in (
        layer.write_prompt("draft", GEN, "p"),
        layer.write_raw_metadata("draft", GEN, {"a": 1}),
    ):
        assert stat.S_IMODE(path.stat().st_mode) == expected
