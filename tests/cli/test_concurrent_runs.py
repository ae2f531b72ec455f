"""Several `daydream` processes over one data root and one DAGSTER_HOME at the same time, against
the mock server (real processes, real HTTP): each needed model call is paid exactly once, every
process exits 0, nothing dies on a start-up race."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daydreaming_dagster.cohorts import read_membership
from daydreaming_dagster.data_layer import GensDataLayer
from daydreaming_dagster.llm.mock_server import MockConfig, MockLLMServer
from tests.cli.test_run_cli import _add_mock_cohort


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "daydreaming_dagster", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = process.communicate(timeout=240)
    return process.returncode, out + err


def _env(tmp_path: Path, base_url: str | None) -> dict[str, str]:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "fresh_dagster_home")}  # created by the runs
    env.pop("DAYDREAMING_LLM_BASE_URL", None)
    if base_url is not None:
        env["DAYDREAMING_LLM_BASE_URL"] = base_url
    return env


def _complete(root: Path, cohort: str) -> bool:
    layer = GensDataLayer.from_root(root)
    members = read_membership(root, cohort)
    return all(layer.parsed_exists(stage, g) for stage, ids in members.items() for g in ids)


@pytest.mark.slow
def test_two_runs_of_one_cohort_pay_each_call_once(demo_root: Path, tmp_path: Path) -> None:
    _add_mock_cohort(demo_root)
    # Calls slow enough that the runs overlap however long each process takes to start.
    with MockLLMServer(MockConfig(latency_s=1.0)) as server:
        env = _env(tmp_path, server.base_url)
        args = ["run", "mockrun", "--no-report", "--concurrency", "4", "--data-root", str(demo_root)]
        first = _start(args, env)
        time.sleep(0.3)
        second = _start(args, env)
        (code_a, log_a), (code_b, log_b) = _finish(first), _finish(second)
        stats = server.stats()
    assert code_a == 0, log_a
    assert code_b == 0, log_b
    assert "Traceback" not in log_a + log_b
    assert stats["total"] == 12, (stats["by_status"], log_a, log_b)  # 4 drafts + 4 essays + 4 evaluations
    assert _complete(demo_root, "mockrun")
    # Whichever run waited says so instead of pretending to reuse or to have done the work.
    assert "claimed by another run" in log_a + log_b
    layer = GensDataLayer.from_root(demo_root)
    members = read_membership(demo_root, "mockrun")
    assert not any(layer.paths.claim_path(s, g).exists() for s, ids in members.items() for g in ids)


@pytest.mark.slow
def test_launch_beside_run_pays_each_call_once(demo_root: Path, tmp_path: Path) -> None:
    """`daydream launch` (a range run per stage in its own process, stage by stage) beside
    `daydream run` (pipelined, in process) of the same cohort."""
    _add_mock_cohort(demo_root)
    with MockLLMServer(MockConfig(latency_s=0.4)) as server:
        env = _env(tmp_path, server.base_url)
        launched = _start(["launch", "mockrun", "--data-root", str(demo_root)], env)
        ran = _start(["run", "mockrun", "--no-report", "--concurrency", "4", "--data-root", str(demo_root)], env)
        (code_launch, log_launch), (code_run, log_run) = _finish(launched), _finish(ran)
        stats = server.stats()
    assert code_launch == 0, log_launch
    assert code_run == 0, log_run
    assert stats["total"] == 12, (stats["by_status"], log_launch, log_run)
    assert _complete(demo_root, "mockrun")


@pytest.mark.slow
def test_two_cohorts_start_together_on_a_fresh_dagster_home(demo_root: Path, tmp_path: Path) -> None:
    """The instance's SQLite schema, dagster.yaml, combo_mappings.csv and the shared catalogs are
    created once; the process that loses a race waits or reuses."""
    _add_mock_cohort(demo_root)
    env = _env(tmp_path, None)
    runs = [_start(["run", cohort, "--no-report", "--offline", "--data-root", str(demo_root)], env)
            for cohort in ("demo", "mockrun")]
    for code, log in map(_finish, runs):
        assert code == 0, log
        assert "Traceback" not in log
    assert _complete(demo_root, "demo") and _complete(demo_root, "mockrun")
