"""Helpers for tests that start the Dagster UI: readiness, GraphQL, process trees, stopping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


def graphql(base: str, query: str) -> dict:
    """POST one GraphQL query to the webserver at ``base`` and return the decoded answer."""
    request = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_until_loaded(
    base: str, server: subprocess.Popen[bytes], log: Path, timeout: float = 90.0
) -> float:
    """Wait for ``/server_info`` and for every code location to be loaded; return the seconds
    it took. Raises with the server's log tail if it exits or is not ready in time."""
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if server.poll() is not None:
            raise AssertionError(
                f"the UI exited early with code {server.returncode}: {log_tail(log)}"
            )
        try:
            with urllib.request.urlopen(f"{base}/server_info", timeout=1) as response:
                assert "dagster_webserver_version" in json.loads(response.read())
            entries = graphql(base, query)["data"]["workspaceOrError"]["locationEntries"]
            if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.25)
    raise AssertionError(
        f"the Dagster UI at {base} was not ready within {timeout:.0f} s: {log_tail(log)}"
    )


def log_tail(log: Path, chars: int = 2000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


def ignore_sigint() -> None:
    """``preexec_fn``: what a background job of a non-interactive shell inherits."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def process_tree(root: int) -> set[int]:
    """``root`` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Field 4 of /proc/PID/stat is the parent pid; the command (field 2) may hold spaces.
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo.extend(children.get(pid, []))
    return tree


def alive(pids: set[int]) -> set[int]:
    """The processes of ``pids`` that still run (zombies have exited)."""
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            running.add(pid)
    return running


def kill_all(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass(frozen=True)
class Stopped:
    """How a server reacted to a stop signal."""

    returncode: int
    seconds: float
    left_running: set[int]
    """Processes of its tree still running shortly after it exited (killed by the helper)."""


def stop_with(server: subprocess.Popen[bytes], tree: set[int], sig: int, timeout: float) -> Stopped:
    """Send ``sig`` to ``server`` and wait up to ``timeout`` s for it and its whole process
    tree (``tree``, collected while it ran) to end. Anything left is killed, so a failing test
    leaves nothing behind; raises when the server itself did not exit in time."""
    started = time.monotonic()
    server.send_signal(sig)
    try:
        server.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_all(alive(tree | {server.pid}))
        server.wait()
        raise AssertionError(
            f"the UI did not exit within {timeout:.0f} s of signal {sig}"
        ) from None
    seconds = time.monotonic() - started
    left = alive(tree - {server.pid})
    deadline = time.monotonic() + 2.0
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = alive(left)
    kill_all(left)
    return Stopped(server.returncode, seconds, left)
