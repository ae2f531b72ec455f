"""The gens store on object storage: ``GensDataLayer.from_root("s3://bucket/prefix")`` against
a real S3-compatible server (moto over HTTP), every read/write/exists/list/delete/append."""

from __future__ import annotations

import json

import pytest

from daydreaming_dagster.data_layer import GensDataLayer, resolve_generation_metadata
from daydreaming_dagster.data_layer.paths import as_root_path
from tests.support.servers import S3Server

pytestmark = pytest.mark.slow


def _keys(server: S3Server, bucket: str) -> list[str]:
    response = server.client().list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in response.get("Contents", []))


def test_root_is_an_s3_path_with_the_endpoint(
    s3_root: tuple[str, str], s3_server: S3Server
) -> None:
    _, root = s3_root
    path = as_root_path(root)
    assert path.protocol == "s3"
    assert path.storage_options["endpoint_url"] == s3_server.endpoint_url
    assert path.storage_options["use_listings_cache"] is False


def test_every_artefact_round_trips(s3_root: tuple[str, str], s3_server: S3Server) -> None:
    bucket, root = s3_root
    layer = GensDataLayer.from_root(root)
    meta = {
        "stage": "essay",
        "gen_id": "e_1",
        "template_id": "t1",
        "mode": "llm",
        "parent_gen_id": "d_1",
        "replicate": 2,
    }

    assert not layer.exists("essay", "e_1")
    layer.write_main_metadata("essay", "e_1", meta)
    layer.write_prompt("essay", "e_1", "prompt ü")
    layer.write_raw("essay", "e_1", "raw text")
    layer.write_raw_metadata("essay", "e_1", {"finish_reason": "stop"})
    layer.write_parsed("essay", "e_1", "parsed text")
    layer.write_parsed_metadata("essay", "e_1", {"success": True})
    layer.append_raw_failure("essay", "e_1", "first failure")
    layer.append_raw_failure("essay", "e_1", "second failure")

    assert layer.exists("essay", "e_1")
    assert layer.read_prompt("essay", "e_1") == "prompt ü"
    assert layer.read_raw("essay", "e_1") == "raw text"
    assert layer.read_parsed("essay", "e_1") == "parsed text"
    assert layer.read_main_metadata("essay", "e_1") == meta
    assert layer.read_raw_metadata("essay", "e_1") == {"finish_reason": "stop"}
    assert layer.read_parsed_metadata("essay", "e_1") == {"success": True}
    assert layer.read_raw_failure_log("essay", "e_1") == "first failure\nsecond failure\n"
    resolved = resolve_generation_metadata(layer, "essay", "e_1")
    assert (resolved.parent_gen_id, resolved.parent_stage, resolved.replicate) == (
        "d_1",
        "draft",
        2,
    )

    prefix = "store/gens/essay/e_1/"
    assert _keys(s3_server, bucket) == [
        prefix + name
        for name in sorted(
            [
                "metadata.json",
                "prompt.txt",
                "raw.txt",
                "raw_metadata.json",
                "parsed.txt",
                "parsed_metadata.json",
                "raw_failure.log",
            ]
        )
    ]
    body = s3_server.client().get_object(Bucket=bucket, Key=prefix + "metadata.json")["Body"].read()
    assert json.loads(body) == meta


def test_reuse_force_and_clear_semantics(s3_root: tuple[str, str], s3_server: S3Server) -> None:
    bucket, root = s3_root
    layer = GensDataLayer.from_root(root)

    assert layer.store_prompt("draft", "d_1", "p1") is False
    assert layer.prompt_exists("draft", "d_1")
    assert not layer.prompt_exists("draft", "d_1", force=True)
    layer.write_raw("draft", "d_1", "r1")
    assert not layer.raw_exists("draft", "d_1")  # raw metadata still missing
    layer.write_raw_metadata("draft", "d_1", {"finish_reason": "stop"})
    layer.write_parsed("draft", "d_1", "x1")
    layer.write_parsed_metadata("draft", "d_1", {"success": True})
    assert layer.raw_exists("draft", "d_1") and layer.parsed_exists("draft", "d_1")
    assert not layer.raw_exists("draft", "d_1", force=True) and not layer.parsed_exists(
        "draft", "d_1", force=True
    )

    assert layer.store_prompt("draft", "d_1", "p1") is True  # identical prompt: everything reused
    assert layer.parsed_exists("draft", "d_1")

    layer.write_raw("draft", "d_1", "r2")  # new raw output: parsed artefacts go
    assert not layer.parsed_exists("draft", "d_1")
    assert not layer.parsed_path("draft", "d_1").exists()
    layer.write_raw_metadata("draft", "d_1", {"failed": True})
    assert not layer.raw_exists("draft", "d_1")  # a rejected raw output is never reused

    assert layer.store_prompt("draft", "d_1", "p2") is False  # changed prompt: raw and parsed go
    assert _keys(s3_server, bucket) == ["store/gens/draft/d_1/prompt.txt"]
    assert layer.read_prompt("draft", "d_1") == "p2"

    with pytest.raises(FileNotFoundError, match="file not found: s3://"):
        layer.read_raw("draft", "d_1")


def test_list_and_delete(s3_root: tuple[str, str], s3_server: S3Server) -> None:
    bucket, root = s3_root
    layer = GensDataLayer.from_root(root)
    assert layer.list_generations("draft") == []
    for gen_id in ("d_b", "d_a"):
        layer.write_prompt("draft", gen_id, "p")
    layer.write_prompt("essay", "e_1", "p")
    s3_server.client().put_object(
        Bucket=bucket, Key="store/gens/draft/.hidden/prompt.txt", Body=b"x"
    )  # stray name

    assert layer.list_generations("draft") == ["d_a", "d_b"]
    assert layer.list_generations("essay") == ["e_1"]
    assert layer.list_generations("evaluation") == []

    # Another worker adds a generation: a fresh listing must see it (no stale listings cache).
    s3_server.client().put_object(Bucket=bucket, Key="store/gens/draft/d_c/prompt.txt", Body=b"p")
    assert layer.list_generations("draft") == ["d_a", "d_b", "d_c"]

    assert layer.delete_generation("draft", "d_a") is True
    assert layer.delete_generation("draft", "d_a") is False
    assert layer.list_generations("draft") == ["d_b", "d_c"]
    assert not layer.exists("draft", "d_a")
    assert "store/gens/draft/d_a/prompt.txt" not in _keys(s3_server, bucket)
    layer.clear_raw("essay", "e_1")  # clearing artefacts that were never written is harmless
    assert layer.read_prompt("essay", "e_1") == "p"
