"""A whole cohort on an object-store data root: build, run every stage offline, report —
against a real S3-compatible server (moto over HTTP)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daydreaming_dagster.cohorts import build_cohort, read_membership
from daydreaming_dagster.data_layer import GensDataLayer
from daydreaming_dagster.llm.offline import OfflineProvider
from daydreaming_dagster.stages.batch import run_parsed_batch, run_prompt_batch, run_raw_batch_sync
from daydreaming_dagster.stages.context import StageContext
from daydreaming_dagster.stages.settings import StageSettings
from tests.support.servers import S3Server, unique_bucket

pytestmark = pytest.mark.slow

REPO_DATA = Path(__file__).resolve().parents[2] / "data"


def _upload_tree(server: S3Server, bucket: str, local: Path, prefix: str) -> None:
    client = server.client()
    for path in local.rglob("*"):
        if path.is_file():
            client.put_object(Bucket=bucket, Key=f"{prefix}/{path.relative_to(local).as_posix()}", Body=path.read_bytes())


def test_demo_cohort_builds_and_runs_on_s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3_server.region)
    bucket = unique_bucket("cohort")
    s3_server.client().create_bucket(Bucket=bucket)
    _upload_tree(s3_server, bucket, REPO_DATA / "1_raw", "data/1_raw")
    _upload_tree(s3_server, bucket, REPO_DATA / "cohorts" / "demo" / "spec", "data/cohorts/demo/spec")
    root = f"s3://{bucket}/data"

    build_cohort(root, "demo")
    members = read_membership(root, "demo")
    assert [len(members[s]) for s in ("draft", "essay", "evaluation")] == [8, 16, 32]

    ctx = StageContext.for_root(root)
    settings = StageSettings(min_lines=3)
    for stage in ("draft", "essay", "evaluation"):
        ids = members[stage]
        report, prompts = run_prompt_batch(ctx, stage, ids, settings)
        assert report.count("failed") == 0, report.failures
        raw = run_raw_batch_sync(ctx, stage, ids, settings, OfflineProvider(), prompts=prompts, concurrency=8)
        assert raw.count("failed") == 0, raw.failures
        parsed = run_parsed_batch(ctx, stage, ids, settings)
        assert parsed.count("failed") == 0, parsed.failures

    layer = GensDataLayer.from_root(root)
    keys = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket, Prefix="data/gens/evaluation/")["Contents"]}
    assert all(f"data/gens/evaluation/{g}/parsed_metadata.json" in keys for g in members["evaluation"])
    assert all(layer.read_parsed_metadata("evaluation", g)["score"] is not None for g in members["evaluation"])
    # The parsed essays decide the tournament's first round (the shipped demo plays one): a
    # build adds its comparisons, seeding their metadata on S3.
    assert build_cohort(root, "demo").counts["comparison"] == 16
    assert layer.read_main_metadata("comparison", read_membership(root, "demo")["comparison"][0])["round"] == 1
    # Re-building the unchanged cohort on S3 writes nothing new.
    before = {o["Key"]: o["LastModified"] for o in s3_server.client().list_objects_v2(Bucket=bucket, Prefix="data/cohorts/")["Contents"]}
    build_cohort(root, "demo")
    after = {o["Key"]: o["LastModified"] for o in s3_server.client().list_objects_v2(Bucket=bucket, Prefix="data/cohorts/")["Contents"]}
    assert after == before

    # The analysis child process reads the same S3 root (the URL, not a local path made of it).
    from daydreaming_dagster.analysis import _api, _prefetch

    monkeypatch.setattr(_prefetch, "prefetch_enabled", lambda: True)
    _api.forget_recent_analyses()
    from daydreaming_dagster.reporting import start_report_prefetch

    assert start_report_prefetch(root, "demo", seed=0, n_boot=50)  # a child that also draws figures
    key, found = _api.analyze_cohort_keyed(root, "demo", n_boot=50)
    assert key in _prefetch._DRAWING and found.n_scores == 32  # the child's analysis was the one used
    _prefetch.discard_prefetch(root, "demo", seed=0, n_boot=50)
    assert _prefetch._DRAWING == {}
