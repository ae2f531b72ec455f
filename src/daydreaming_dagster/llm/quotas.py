"""Where rate-limit schedules live, so a quota holds across every process that shares them.

A provider's quota (requests or tokens per minute, per model) belongs to the account, not to a
process: two ``daydream run`` side by side, a sensor's run beside a CLI run, or celery workers
must together stay under it. Each limited key (``rpm:<model>``, ``tpm:<model>``) keeps one
number, its *theoretical arrival time* (the generic cell rate algorithm): reserving ``units``
moves it ``units × interval`` seconds forward and says how long the caller waits for its turn.
The stores differ only in who shares that number:

- :class:`MemoryQuotaStore`: this process (threads and event loops of one invocation);
- :class:`FileQuotaStore`: every process on this machine using the same data root (a small file
  per key under ``<data_root>/.daydream/quotas``, read and rewritten under ``flock``);
- :class:`RedisQuotaStore`: every process on every machine reaching one Redis (one Lua script
  per reservation, timed by the Redis server's clock), for multi-machine deployments.

:func:`quota_store_for` picks one for a data root. No Dagster, no network here except Redis.
"""

from __future__ import annotations

import abc
import hashlib
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = [
    "QUOTA_DIR_ENV",
    "QUOTA_REDIS_URL_ENV",
    "FileQuotaStore",
    "MemoryQuotaStore",
    "QuotaStore",
    "RedisQuotaStore",
    "quota_store_for",
]

QUOTA_REDIS_URL_ENV = "DAYDREAMING_QUOTA_REDIS_URL"
"""A Redis URL (``redis://host:6379/8``): quotas shared by every machine reaching it."""
QUOTA_DIR_ENV = "DAYDREAMING_QUOTA_DIR"
"""A local directory for the file-backed quotas (default: under the data root; for an object
store data root, a per-machine cache directory)."""


class QuotaStore(abc.ABC):
    """Shared schedules of rate-limited keys (see the module docstring)."""

    @abc.abstractmethod
    def reserve(self, key: str, units: float, interval_s: float, tolerance_s: float = 0.0) -> float:
        """Reserve ``units`` of ``key`` (each worth ``interval_s`` of the schedule, ``tolerance_s``
        of burst allowed) and return how many seconds to wait before sending (0: now)."""

    @abc.abstractmethod
    def adjust(self, key: str, units: float, interval_s: float) -> None:
        """Correct a reservation by ``units`` (negative: give back what was not used)."""

    @abc.abstractmethod
    def defer(self, key: str, seconds: float) -> None:
        """Let no reservation of ``key`` start within ``seconds`` from now (a provider's
        ``Retry-After``, applied to every process sharing the store)."""


def _advance(tat: float, now: float, units: float, interval_s: float, tolerance_s: float) -> tuple[float, float]:
    """(wait, new theoretical arrival time) of one reservation: the GCRA step every store runs."""
    start = max(now, tat - tolerance_s)
    return start - now, max(tat, now) + units * interval_s


class MemoryQuotaStore(QuotaStore):
    """Schedules shared by the threads and event loops of this process only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()

    def reserve(self, key: str, units: float, interval_s: float, tolerance_s: float = 0.0) -> float:
        with self._lock:
            wait, self._tat[key] = _advance(self._tat.get(key, 0.0), self._clock(), units, interval_s, tolerance_s)
            return wait

    def adjust(self, key: str, units: float, interval_s: float) -> None:
        with self._lock:
            self._tat[key] = self._tat.get(key, 0.0) + units * interval_s

    def defer(self, key: str, seconds: float) -> None:
        with self._lock:
            self._tat[key] = max(self._tat.get(key, 0.0), self._clock() + seconds)


class FileQuotaStore(QuotaStore):
    """Schedules in ``directory`` (one file per key holding its arrival time, wall-clock
    seconds), shared by every process of this machine that uses the directory. Each update
    reads and rewrites the file under an exclusive ``flock``; the processes' clocks are the
    machine's one clock."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / (re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".tat")

    def _update(self, key: str, step: Callable[[float, float], tuple[float, float]]) -> float:
        import fcntl

        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(key), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                tat = float(os.read(fd, 64).decode("ascii").strip() or 0.0)
            except ValueError:
                tat = 0.0  # a damaged file: start a fresh schedule rather than fail the call
            result, new_tat = step(tat, time.time())
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, f"{new_tat:.6f}".encode("ascii"))
            return result
        finally:
            os.close(fd)  # drops the lock

    def reserve(self, key: str, units: float, interval_s: float, tolerance_s: float = 0.0) -> float:
        return self._update(key, lambda tat, now: _advance(tat, now, units, interval_s, tolerance_s))

    def adjust(self, key: str, units: float, interval_s: float) -> None:
        self._update(key, lambda tat, now: (0.0, tat + units * interval_s))

    def defer(self, key: str, seconds: float) -> None:
        self._update(key, lambda tat, now: (0.0, max(tat, now + seconds)))


# GCRA in one atomic script, on the Redis server's clock (machines' clocks may disagree).
_RESERVE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local units, interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local start = math.max(now, tat - tolerance)
local new = math.max(tat, now) + units * interval
redis.call('SET', KEYS[1], string.format('%.6f', new), 'PX', math.ceil((new - now) * 1000) + 120000)
return string.format('%.6f', start - now)
"""
_ADJUST_LUA = """
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
redis.call('SET', KEYS[1], string.format('%.6f', tat + tonumber(ARGV[1])), 'KEEPTTL')
return 1
"""
_DEFER_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now + tonumber(ARGV[1]))
redis.call('SET', KEYS[1], string.format('%.6f', tat), 'PX', math.ceil((tat - now) * 1000) + 120000)
return 1
"""


class RedisQuotaStore(QuotaStore):
    """Schedules in Redis under ``prefix`` (shared by every machine reaching the server)."""

    def __init__(self, url: str, prefix: str = "daydream:quota:") -> None:
        import redis

        self.url = url
        self.prefix = prefix
        self._client = redis.Redis.from_url(url)
        self._reserve = self._client.register_script(_RESERVE_LUA)
        self._adjust = self._client.register_script(_ADJUST_LUA)
        self._defer = self._client.register_script(_DEFER_LUA)

    def reserve(self, key: str, units: float, interval_s: float, tolerance_s: float = 0.0) -> float:
        answer = self._reserve(keys=[self.prefix + key], args=[units, interval_s, tolerance_s])
        return max(0.0, float(answer))

    def adjust(self, key: str, units: float, interval_s: float) -> None:
        self._adjust(keys=[self.prefix + key], args=[units * interval_s])

    def defer(self, key: str, seconds: float) -> None:
        self._defer(keys=[self.prefix + key], args=[seconds])


def _root_digest(data_root: str) -> str:
    return hashlib.sha256(data_root.encode("utf-8")).hexdigest()[:16]


def quota_store_for(data_root: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None) -> QuotaStore:
    """The store a run over ``data_root`` shares its quotas through: Redis when
    ``$DAYDREAMING_QUOTA_REDIS_URL`` is set (keys prefixed per data root), else files under
    ``$DAYDREAMING_QUOTA_DIR`` or ``<data_root>/.daydream/quotas`` (a local root) or a
    per-machine cache directory (an object-store root); in memory without a data root."""
    env = os.environ if environ is None else environ
    root = str(data_root) if data_root is not None else None
    url = (env.get(QUOTA_REDIS_URL_ENV) or "").strip()
    if url:
        return RedisQuotaStore(url, prefix=f"daydream:quota:{_root_digest(root or '-')}:")
    directory = (env.get(QUOTA_DIR_ENV) or "").strip()
    if directory:
        return FileQuotaStore(Path(directory))
    if root is None:
        return MemoryQuotaStore()
    if "://" in root and not root.startswith("file://"):
        cache = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        return FileQuotaStore(cache / "daydreaming" / "quotas" / _root_digest(root))
    return FileQuotaStore(Path(root.removeprefix("file://")) / ".daydream" / "quotas")
