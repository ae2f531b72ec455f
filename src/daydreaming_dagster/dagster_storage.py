"""Dagster's SQLite storage with its database engines kept open, for runs executed in-process.

Dagster's SQLite storages build a new SQLAlchemy engine (``NullPool``) for every statement they
run: each event of a run opens the run's database file, checks its schema once, compiles the
insert afresh (the compiled-statement cache lives on the engine, which is thrown away) and
closes the file; an asset event does it again for the index database. Measured on the demo
cohort (365 events over 4 runs), that was about 5 s of an 18 s fresh ``daydream run demo``.

The classes here are the same storages, reading and writing the same files with the same
schema, except that each run and event database keeps one engine (and so a small pool of open
connections and its statement cache) until the instance is disposed of. Only
:func:`daydreaming_dagster.orchestration.in_process_instance` uses them, and only when
``dagster.yaml`` configures no storage or plain SQLite storage: the webserver, the daemon and
any other process keep Dagster's own classes over the same files, which SQLite's locking (WAL
journal, busy timeout) already makes safe to share.

Open connections must not cross a ``fork``: SQLite forbids using a connection in a child
process. Every engine remembers the process that made it; in a forked child, the inherited
engines are dropped without closing the parent's connections (``dispose(close=False)``) and
new ones are made.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine

RUN_SHARD_ENGINES = 8
"""Per-run event databases kept open at once (older ones are closed): a run writes to its own
file while it runs, so a long-lived process needs only the few most recent."""

MODULE = __name__
STORAGE_CLASS = "PooledSqliteStorage"


class _EngineCache:
    """One engine per connection string, at most ``limit`` of them (least recently used closed
    first), remade in a forked child."""

    def __init__(self, limit: int | None = None, **engine_args: Any) -> None:
        self._limit = limit
        self._engine_args = engine_args
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def get(self, conn_string: str) -> Engine:
        with self._lock:
            if os.getpid() != self._pid:
                # A forked child: the parent's connections stay the parent's.
                for engine in self._engines.values():
                    engine.dispose(close=False)
                self._engines.clear()
                self._pid = os.getpid()
            engine = self._engines.get(conn_string)
            if engine is None:
                engine = create_engine(conn_string, **self._engine_args)
                self._engines[conn_string] = engine
                while self._limit is not None and len(self._engines) > self._limit:
                    _, oldest = self._engines.popitem(last=False)
                    oldest.dispose()
            else:
                self._engines.move_to_end(conn_string)
            return engine

    def dispose(self) -> None:
        with self._lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()


@contextmanager
def _transaction(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """:class:`SqliteEventLogStorage` (one database per run plus the index database) whose
    databases each keep an open engine."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engine_cache = _EngineCache(limit=RUN_SHARD_ENGINES + 1,
                                          connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        super().__init__(base_dir, inst_data=inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # Same steps as the parent (one lock for all shards, schema check on first use), with
        # the engine taken from the cache instead of built and disposed per statement.
        with self._db_lock:
            engine = self._engine_cache.get(self.conn_string_for_shard(shard))
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with _transaction(engine) as conn:
                yield conn

    def dispose(self) -> None:
        self._engine_cache.dispose()
        super().dispose()


class PooledSqliteRunStorage(SqliteRunStorage):
    """:class:`SqliteRunStorage` whose database keeps an open engine."""

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engine_cache = _EngineCache()
        super().__init__(conn_string, inst_data)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with _transaction(self._engine_cache.get(self._conn_string)) as conn:
            yield conn

    def dispose(self) -> None:
        self._engine_cache.dispose()
        super().dispose()


class PooledSqliteStorage(DagsterSqliteStorage):
    """Dagster's default SQLite storage (same directories under ``base_dir``) with the pooled
    run and event log storages above."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        # DagsterSqliteStorage.__init__ builds Dagster's own classes; build ours instead and
        # keep the rest of its set-up (the ConfigurableClass and DagsterStorage parts).
        self.base_dir = base_dir
        self._run_storage = PooledSqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))
        # Schedule storage stays Dagster's own: runs hardly touch it, and DagsterInstance.dispose()
        # does not dispose it, so an engine kept open there would outlive the instance.
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> PooledSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)


def pooled_storage_override(instance_config: Mapping[str, Any], home: str) -> dict[str, Any] | None:
    """The ``storage`` instance override that swaps Dagster's SQLite storage for the pooled one
    over the same files, or ``None`` when ``instance_config`` (a parsed ``dagster.yaml``) sets
    up another storage (PostgreSQL, MySQL, a custom class, per-storage settings, or a SQLite
    ``base_dir`` read from the environment), which is then left alone."""
    if any(instance_config.get(key) for key in ("run_storage", "event_log_storage", "schedule_storage")):
        return None
    storage = instance_config.get("storage")
    if not storage:
        base_dir: Any = home
    elif isinstance(storage, Mapping) and set(storage) == {"sqlite"}:
        base_dir = (storage["sqlite"] or {}).get("base_dir")
    else:
        return None
    if not isinstance(base_dir, str):
        return None
    return {"storage": {"custom": {"module": MODULE, "class": STORAGE_CLASS, "config": {"base_dir": base_dir}}}}
