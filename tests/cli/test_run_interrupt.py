"""Ctrl-C during `daydream run`: no new calls start, calls in flight finish and persist, the
command exits 130, and a re-run resumes without paying again for finished generations."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daydreaming_dagster.cohorts import read_membership
from daydreaming_dagster.data_layer import GensDataLayer
from daydreaming_dagster.llm.mock_server import MockConfig, MockLLMServer

from .test_run_cli import _add_mock_cohort


def _daydream(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "daydreaming_dagster", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # Default SIGINT disposition even when pytest runs in the background.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


@pytest.mark.slow
def test_ctrl_c_lets_calls_in_flight_persist_and_rerun_resumes(demo_root: Path, tmp_path: Path) -> None:
    _add_mock_cohort(demo_root)
    with MockLLMServer(MockConfig(latency_s=1.5)) as server:
        env = {**os.environ, "DAYDREAMING_LLM_BASE_URL": server.base_url, "DAGSTER_HOME": str(tmp_path / "dh")}
        args = ["run", "mockrun", "--concurrency", "2", "--no-report", "--data-root", str(demo_root)]
        proc = _daydream(args, env)
        deadline = time.monotonic() + 60
        while server.stats()["in_flight"] < 2:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "stopping: no new model calls" in err and "re-run the same command to resume" in err

        paid = server.stats()["total"]
        assert paid == 2  # the two calls in flight; nothing started after Ctrl-C
        layer = GensDataLayer.from_root(demo_root)
        members = read_membership(demo_root, "mockrun")
        persisted = [g for g in members["draft"] if layer.raw_exists("draft", g)]
        assert len(persisted) == 2  # in-flight calls finished and were written

        rerun = _daydream(args, env)
        _, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err
        total = server.stats()["total"]
    assert total == 12  # 4 drafts + 4 essays + 4 evaluations: the 2 paid drafts were not paid again
    assert all(layer.parsed_exists(s, g) for s, ids in members.items() for g in ids)
