"""Claims: a lease on one generation's paid phase, so processes sharing a data root never pay
for the same generation twice (DESIGN §8).

Before a process calls a model for a generation it claims it: ``gens/<stage>/<gen_id>/claim.json``
is created atomically (a hard link of a complete temporary file on local disks, a conditional
``If-None-Match: *`` PUT on S3-compatible stores), holding the owner's run id, host, pid and
an expiry. Leases are not fsynced: after a crash an empty or missing lease only means "no
live owner", which is the truth. Whoever creates the file holds the claim; the others see the holder and wait for it
(or skip). The holder renews the expiry while it works (a :class:`ClaimKeeper` thread) and
removes the file once the output is persisted.

A lease may be taken over when its owner is gone: on the same host as soon as its process is
dead (the pid no longer exists, or now belongs to a process started later), from any host once
its expiry has passed (a live owner renews well before). The takeover is a compare-and-swap
(under an advisory lock of the generation directory on local disks, ``If-Match`` on the
object's ETag on object stores), so of several processes taking over the same stale lease
exactly one wins.

Any stage with a paid phase uses the same claims (the key is ``(stage, gen_id)``); nothing here
knows about models or Dagster.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..types import Stage
from . import _storage
from .paths import Paths

__all__ = [
    "CLAIM_TTL_ENV",
    "DEFAULT_CLAIM_TTL_S",
    "ClaimHeld",
    "ClaimKeeper",
    "ClaimStore",
    "Lease",
]

CLAIM_TTL_ENV = "DAYDREAMING_CLAIM_TTL_S"
DEFAULT_CLAIM_TTL_S = 60.0
"""Seconds a lease stays valid without renewal; the keeper renews it every third of that."""


@functools.cache
def _host() -> str:
    return socket.gethostname()


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``), to tell a live
    owner from an unrelated process that reused its pid; ``None`` where ``/proc`` is absent."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from its closing one.
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


@dataclass(frozen=True)
class Lease:
    """One claim as stored in ``claim.json``."""

    stage: str
    gen_id: str
    run_id: str
    """Run holding the claim (a Dagster run id; empty outside Dagster)."""
    host: str
    """Host name of the owner process."""
    pid: int
    """Owner process id on ``host``."""
    process_start: str | None
    """Start time of the owner process (``/proc``), telling it apart from a reused pid."""
    token: str
    """Unique per claim: a process only renews or releases the lease it created."""
    acquired_at: float
    """Unix time the claim was made."""
    expires_at: float
    """Unix time after which the lease may be taken over (renewed while the owner works)."""

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Lease | None:
        """The lease in ``data``, or ``None`` when unreadable (a foreign or damaged file)."""
        try:
            raw = json.loads(data.decode("utf-8"))
            return cls(**{name: raw[name] for name in cls.__dataclass_fields__})
        except (ValueError, KeyError, TypeError):
            return None

    def owner_alive(self) -> bool | None:
        """Whether the owner process still runs: ``None`` when it is on another host (unknowable
        from here; its expiry decides)."""
        if self.host != _host():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, owned by another user
        started = _process_start(self.pid)
        return not (self.process_start and started and started != self.process_start)

    def stale(self, now: float) -> bool:
        """May be taken over: expired, or its owner is known to be dead."""
        return now > self.expires_at or self.owner_alive() is False

    def describe(self) -> str:
        run = f"run {self.run_id}" if self.run_id else "another run"
        return f"{run} (pid {self.pid} on {self.host})"


class ClaimHeld(Exception):
    """The generation is claimed by another live owner (``lease``); nothing was called."""

    def __init__(self, lease: Lease) -> None:
        super().__init__(f"{lease.stage} {lease.gen_id} is claimed by {lease.describe()}")
        self.lease = lease


class ClaimStore:
    """Claims of one owner (a run in one process) over one data root.

    Args:
        data_root: the data root (a local path or an ``s3://`` UPath).
        run_id: recorded in the leases (``claimed by run ...`` in the other runs' reports).
        ttl_s: lease validity without renewal (default ``$DAYDREAMING_CLAIM_TTL_S`` or 60 s).
    """

    def __init__(self, data_root: Path, run_id: str = "", ttl_s: float | None = None) -> None:
        self.paths = Paths(data_root)
        self.run_id = run_id
        self.ttl_s = ttl_s if ttl_s is not None else _ttl_from_env()
        self._local = _storage.is_local(data_root)
        self._held: dict[tuple[str, str], Lease] = {}
        self._lock = threading.Lock()

    @property
    def is_local(self) -> bool:
        """True on local disks (claims are file operations), False on object stores (HTTP)."""
        return self._local

    # -- the three operations ----------------------------------------------------------------
    def acquire(self, stage: Stage, gen_id: str) -> Lease:
        """Claim ``stage``/``gen_id`` for this owner and return the lease; raise
        :class:`ClaimHeld` naming the holder when a live owner has it."""
        path = self.paths.claim_path(stage, gen_id)
        for _ in range(20):  # the holder may release between our create and our read: try again
            lease = self._new_lease(stage, gen_id)
            if _storage.create_exclusive(path, lease.to_bytes(), fsync=False):
                return self._hold(lease)
            current, version = self._read(path)
            if current is None and version is None:
                continue  # released meanwhile
            if current is not None and not current.stale(time.time()):
                raise ClaimHeld(current)
            # Stale (or unreadable): take it over, unless someone else changes it first.
            if self._swap(path, current, lease, version):
                return self._hold(lease)
        raise ClaimHeld(current) if current is not None else RuntimeError(f"could not claim {path}")

    def renew(self, lease: Lease) -> Lease | None:
        """Push the lease's expiry forward; ``None`` when it is no longer ours (taken over
        after it expired: the owner stalled for longer than the TTL)."""
        path = self.paths.claim_path(lease.stage, lease.gen_id)  # type: ignore[arg-type]
        renewed = replace(lease, expires_at=time.time() + self.ttl_s)
        current, version = self._read(path)
        if current is None or current.token != lease.token or not self._swap(path, current, renewed, version):
            with self._lock:
                self._held.pop((lease.stage, lease.gen_id), None)
            return None
        with self._lock:
            self._held[(lease.stage, lease.gen_id)] = renewed
        return renewed

    def release(self, lease: Lease) -> None:
        """Remove the claim if it is still ours (the output is persisted by now)."""
        with self._lock:
            self._held.pop((lease.stage, lease.gen_id), None)
        path = self.paths.claim_path(lease.stage, lease.gen_id)  # type: ignore[arg-type]
        with self._guard(path):
            current, _ = self._read(path)
            if current is not None and current.token == lease.token:
                _storage.remove_file(path)

    # -- queries ------------------------------------------------------------------------------
    def holder(self, stage: Stage, gen_id: str) -> Lease | None:
        """The lease on ``stage``/``gen_id`` now, if any (stale or not)."""
        return self._read(self.paths.claim_path(stage, gen_id))[0]

    def held(self) -> list[Lease]:
        """Leases this store holds now."""
        with self._lock:
            return list(self._held.values())

    def renew_all(self) -> int:
        """Renew every lease held; return how many are still ours."""
        return sum(1 for lease in self.held() if self.renew(lease) is not None)

    def release_all(self) -> None:
        for lease in self.held():
            self.release(lease)

    # -- internals ------------------------------------------------------------------------------
    def _new_lease(self, stage: Stage, gen_id: str) -> Lease:
        now = time.time()
        pid = os.getpid()
        return Lease(stage=stage, gen_id=gen_id, run_id=self.run_id, host=_host(), pid=pid,
                     process_start=_process_start(pid), token=uuid.uuid4().hex, acquired_at=now,
                     expires_at=now + self.ttl_s)

    def _hold(self, lease: Lease) -> Lease:
        with self._lock:
            self._held[(lease.stage, lease.gen_id)] = lease
        return lease

    def _read(self, path: Path) -> tuple[Lease | None, str | None]:
        """(lease, version): version is the object's ETag on object stores, ``"local"`` for an
        existing local file, ``None`` when there is no file."""
        version = "local" if self._local else _storage.object_version(path)
        if not self._local and version is None:
            return None, None
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None, None
        return Lease.from_bytes(data), version

    def _swap(self, path: Path, expected: Lease | None, new: Lease, version: str | None) -> bool:
        """Replace the lease at ``path`` with ``new`` only if it still is ``expected``."""
        if not self._local:
            return version is not None and _storage.replace_if_version(path, new.to_bytes(), version)
        with self._guard(path):
            current, _ = self._read(path)
            if current != expected or (current is None and not path.is_file()):
                return False
            _storage.atomic_write_bytes(path, new.to_bytes(), fsync=False)
            return True

    @contextlib.contextmanager
    def _guard(self, path: Path) -> Iterator[None]:
        """Serialise read-check-replace of one claim between processes: an advisory lock on the
        generation directory (local disks; object stores use ``If-Match`` instead)."""
        if not self._local:
            yield
            return
        import fcntl

        try:
            fd = os.open(path.parent, os.O_RDONLY)
        except FileNotFoundError:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the lock


def _ttl_from_env() -> float:
    raw = os.environ.get(CLAIM_TTL_ENV, "").strip()
    if not raw:
        return DEFAULT_CLAIM_TTL_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        from ..errors import ConfigError

        raise ConfigError(f"{CLAIM_TTL_ENV}={raw!r} must be a positive number of seconds; unset it or fix the value")
    return value


class ClaimKeeper:
    """Renews a :class:`ClaimStore`'s leases every third of their TTL from a daemon thread
    (a thread, not a task: an event loop busy with answers must not let leases lapse).
    Use as a context manager; on exit it stops and releases whatever is still held."""

    def __init__(self, store: ClaimStore) -> None:
        self.store = store
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="daydream-claims", daemon=True)

    def _run(self) -> None:
        interval = max(0.05, self.store.ttl_s / 3)
        while not self._stop.wait(interval):
            with contextlib.suppress(Exception):  # a failed renewal is retried next round
                self.store.renew_all()

    def __enter__(self) -> ClaimKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join(5)
        self.store.release_all()
