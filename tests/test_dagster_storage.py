"""The pooled SQLite storage used for in-process runs: same files, readable by Dagster's own
classes, chosen only when dagster.yaml leaves storage to SQLite, safe across fork."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, asset, materialize
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from daydreaming_dagster.cohorts import read_membership
from daydreaming_dagster.dagster_storage import (
    RUN_SHARD_ENGINES,
    PooledSqliteEventLogStorage,
    PooledSqliteRunStorage,
    _EngineCache,
    pooled_storage_override,
)
from daydreaming_dagster.orchestration import in_process_instance


@asset
def answer() -> int:
    return 42


def test_override_only_replaces_plain_sqlite_storage(tmp_path: Path) -> None:
    home = str(tmp_path)
    custom = {"storage": {"custom": {"module": "daydreaming_dagster.dagster_storage",
                                     "class": "PooledSqliteStorage", "config": {"base_dir": home}}}}
    assert pooled_storage_override({}, home) == custom
    assert pooled_storage_override({"telemetry": {"enabled": False}}, home) == custom
    elsewhere = pooled_storage_override({"storage": {"sqlite": {"base_dir": "/srv/dagster"}}}, home)
    assert elsewhere is not None
    assert elsewhere["storage"]["custom"]["config"] == {"base_dir": "/srv/dagster"}
    # Anything else is the user's storage and stays theirs.
    assert pooled_storage_override({"storage": {"postgres": {"postgres_url": "postgresql://x"}}}, home) is None
    assert pooled_storage_override({"storage": {"sqlite": {"base_dir": {"env": "DIR"}}}}, home) is None
    assert pooled_storage_override({"event_log_storage": {"module": "m", "class": "C"}}, home) is None
    assert pooled_storage_override({"storage": {"custom": {"module": "m", "class": "C"}}}, home) is None


def test_in_process_runs_write_files_dagsters_own_storage_reads(tmp_path: Path) -> None:
    instance = in_process_instance()
    assert type(instance.event_log_storage) is PooledSqliteEventLogStorage
    assert type(instance.run_storage) is PooledSqliteRunStorage
    results = [materialize([answer], instance=instance) for _ in range(3)]
    assert all(result.success for result in results)
    instance.dispose()

    # A separate process (the webserver, the daemon) opens the same home with Dagster's classes.
    plain = DagsterInstance.get()
    assert type(plain.event_log_storage) is SqliteEventLogStorage
    assert {run.run_id for run in plain.get_runs()} == {result.run_id for result in results}
    latest = plain.get_latest_materialization_event(AssetKey("answer"))
    assert latest is not None and latest.run_id == results[-1].run_id
    for result in results:
        assert any(e.dagster_event_type == DagsterEventType.RUN_SUCCESS for e in plain.all_logs(result.run_id))
    plain.dispose()


def test_user_configured_storage_is_left_alone(tmp_path: Path) -> None:
    home = Path(os.environ["DAGSTER_HOME"])
    other = tmp_path / "elsewhere"
    (home / "dagster.yaml").write_text(
        "storage:\n  sqlite:\n    base_dir:\n      env: MY_STORAGE_DIR\n", encoding="utf-8")
    os.environ["MY_STORAGE_DIR"] = str(other)
    try:
        instance = in_process_instance()
        assert type(instance.event_log_storage) is SqliteEventLogStorage
        assert materialize([answer], instance=instance).success
        instance.dispose()
    finally:
        del os.environ["MY_STORAGE_DIR"]
    assert (other / "history" / "runs.db").is_file()


def test_engine_cache_closes_the_least_recently_used(tmp_path: Path) -> None:
    cache = _EngineCache(limit=2)
    urls = [f"sqlite:///{tmp_path / f'{name}.db'}" for name in "abc"]
    first = cache.get(urls[0])
    assert cache.get(urls[0]) is first
    cache.get(urls[1])
    cache.get(urls[0])  # most recently used again
    cache.get(urls[2])  # evicts urls[1]
    assert cache.get(urls[0]) is first
    assert list(cache._engines) == [urls[2], urls[0]]  # noqa: SLF001
    cache.dispose()
    assert RUN_SHARD_ENGINES >= 2


def _child_writes(cache: _EngineCache, url: str, queue: multiprocessing.Queue) -> None:
    inherited = cache._engines[url]  # noqa: SLF001
    engine = cache.get(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (2)")
    queue.put(engine is not inherited)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_engine_cache_makes_new_engines_in_a_forked_child(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    cache = _EngineCache()
    engine = cache.get(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_writes, args=(cache, url, queue))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert queue.get(timeout=5) is True
    # The parent's pooled connection still works and sees the child's row.
    with cache.get(url).connect() as conn:
        assert sorted(row[0] for row in conn.exec_driver_sql("SELECT x FROM t")) == [1, 2]
    cache.dispose()


def _open_files_under(directory: Path) -> list[str]:
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(directory)):
            found.append(target)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_runs_from_the_application_layer_leave_no_database_open(demo_root: Path) -> None:
    """A notebook runs cohorts again and again in one process: each run's instance (and its
    open SQLite files) is disposed of when the run returns."""
    from daydreaming_dagster import app

    home = Path(os.environ["DAGSTER_HOME"])
    first = app.run(str(demo_root), "demo", stages=["draft"], offline=True)
    assert first.run_ids and not first.failed
    assert _open_files_under(home) == []
    app.run(str(demo_root), "demo", stages=["draft"], force=["draft"], offline=True)
    assert _open_files_under(home) == []
    draft = read_membership(demo_root, "demo")["draft"][0]
    [retried] = app.retry_failed(str(demo_root), "demo", {"draft": [draft]}, offline=True)
    assert retried.run_ids and retried.still_failing == []
    assert _open_files_under(home) == []
