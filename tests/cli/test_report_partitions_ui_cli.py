"""``daydream report``, ``daydream partitions prune`` and ``daydream ui``.

Report and prune run in-process on a copy of the shipped demo data; the UI runs as a real
server in a subprocess, started the way a background shell job is (SIGINT ignored) and
stopped with SIGTERM or SIGINT.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from daydreaming_dagster.cohorts import build_cohort, read_membership
from tests.support.cli import run_cli as _run
from tests.support.servers import LOOPBACK, free_port
from tests.ui.support import (
    alive,
    graphql,
    ignore_sigint,
    kill_all,
    log_tail,
    process_tree,
    stop_with,
    wait_until_loaded,
)

STAGE_SETS = {"draft": "draft_gens", "essay": "essay_gens", "evaluation": "evaluation_gens"}





# -- report ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_report_after_a_run_prints_the_paths_and_copies_top_essays(
    demo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(["run", "demo", "--no-report", "--data-root", str(demo_root)], capsys)
    assert code == 0, err
    reports = demo_root / "cohorts" / "demo" / "reports"
    assert not (reports / "report.md").exists()

    code, out, err = _run(["report", "demo", "--top-n", "2", "--data-root", str(demo_root)], capsys)

    assert code == 0, err
    assert out.splitlines() == [
        f"report: {reports / 'report.md'}",
        f"html:   {reports / 'report.html'}",
        f"plot:   {reports / 'score_distributions.png'}",
        f"analysis: {demo_root / 'results' / 'demo' / 'analysis'}",
    ]
    assert "draft 8/8 ok, essay 16/16 ok, evaluation 32/32 ok; 32 of 32 evaluations scored" in err
    markdown = (reports / "report.md").read_text()
    assert markdown.startswith("# DayDreaming cohort demo")
    assert (reports / "report.html").read_text().lstrip().lower().startswith("<!doctype html")
    assert (reports / "score_distributions.png").read_bytes()[:4] == b"\x89PNG"
    essays = set(read_membership(str(demo_root), "demo")["essay"])
    top_files = sorted(p.name for p in (demo_root / "results" / "demo" / "top_essays").glob("*.md"))
    assert [name[:3] for name in top_files] == ["01_", "02_"], top_files
    top_ids = [name[3:-3] for name in top_files]
    assert set(top_ids) <= essays
    assert all(gen_id in markdown for gen_id in top_ids)


def test_report_of_a_built_but_unrun_cohort_reports_missing_generations(
    demo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_cohort(demo_root, "demo")

    code, out, err = _run(["report", "demo", "--data-root", str(demo_root)], capsys)

    assert code == 0, err
    assert "draft 0/8 ok, essay 0/16 ok, evaluation 0/32 ok; 0 of 32 evaluations scored" in err
    report_md = demo_root / "cohorts" / "demo" / "reports" / "report.md"
    assert out.splitlines()[0] == f"report: {report_md}"
    assert "missing" in report_md.read_text()


def test_report_of_an_unknown_cohort_is_one_line_and_exit_2(
    demo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(["report", "nope", "--data-root", str(demo_root)], capsys)

    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: cohort 'nope' not found") and "demo" in err


def test_report_with_a_missing_data_root_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(["report", "demo", "--data-root", str(tmp_path / "absent")], capsys)

    assert code == 2
    assert out == ""
    assert "does not exist" in err


# -- partitions prune -----------------------------------------------------------------------
def _keys(name: str) -> list[str]:
    from daydreaming_dagster.orchestration import get_instance

    with get_instance() as instance:
        return list(instance.get_dynamic_partitions(name))


def _register(demo_root: Path) -> None:
    from daydreaming_dagster.assets.cohort import (
        register_membership_partitions,
        sync_cohort_partitions,
    )
    from daydreaming_dagster.orchestration import get_instance

    with get_instance() as instance:
        sync_cohort_partitions(instance, str(demo_root))
        register_membership_partitions(instance, str(demo_root), "demo")
        # A cohort whose spec has been deleted since it was registered.
        instance.add_dynamic_partitions("cohorts", ["retired"])


def test_prune_dry_run_lists_then_prune_removes_keys_no_cohort_lists(
    demo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_cohort(demo_root, "demo")
    _register(demo_root)
    before = read_membership(str(demo_root), "demo")
    # Narrow the cohort to one draft template: half its generations leave the membership.
    spec_path = demo_root / "cohorts" / "demo" / "spec" / "config.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["axes"]["draft_template"] = ["links-ideas"]
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    build_cohort(demo_root, "demo")
    after = read_membership(str(demo_root), "demo")
    stale = {
        stage: [g for g in before[stage] if g not in set(after[stage])] for stage in STAGE_SETS
    }
    assert [len(stale[s]) for s in STAGE_SETS] == [4, 8, 16]
    registered = {name: _keys(name) for name in [*STAGE_SETS.values(), "cohorts"]}

    code, out, err = _run(
        ["partitions", "prune", "--dry-run", "--data-root", str(demo_root)], capsys
    )

    assert code == 0, err
    lines = out.splitlines()
    assert "draft_gens: would remove 4 key(s)" in lines
    assert "essay_gens: would remove 8 key(s)" in lines
    assert "evaluation_gens: would remove 16 key(s)" in lines
    assert "cohorts: would remove 1 key(s)" in lines and "  retired" in lines
    assert all(f"  {gen_id}" in lines for gen_id in stale["draft"] + stale["essay"])
    assert "... and 16 more" not in out and "evaluation_gens" in out
    assert "dry run: 29 key(s) would be removed" in err
    assert {name: _keys(name) for name in registered} == registered  # nothing removed

    code, out, err = _run(["partitions", "prune", "--data-root", str(demo_root)], capsys)

    assert code == 0, err
    assert "evaluation_gens: removed 16 key(s)" in out.splitlines()
    for stage, name in STAGE_SETS.items():
        # Survivors keep their order, so the cohort still runs as one contiguous range.
        assert _keys(name) == [g for g in registered[name] if g in set(after[stage])]
    assert _keys("cohorts") == ["demo"]

    code, out, err = _run(["partitions", "prune", "--data-root", str(demo_root)], capsys)
    assert code == 0
    assert "nothing to prune" in err
    assert all(line.endswith("removed 0 key(s)") for line in out.splitlines())


def test_prune_lists_the_first_twenty_keys_unless_asked_for_all(
    demo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_cohort(demo_root, "demo")
    _register(demo_root)
    (demo_root / "cohorts" / "demo" / "membership.csv").write_text("stage,gen_id\n")
    evaluations = _keys("evaluation_gens")
    assert len(evaluations) == 32

    code, out, _ = _run(["partitions", "prune", "--dry-run", "--data-root", str(demo_root)], capsys)
    assert code == 0
    assert "  ... and 12 more (--all-keys lists them)" in out
    assert f"  {evaluations[19]}" in out and f"  {evaluations[20]}" not in out

    code, out, _ = _run(
        ["partitions", "prune", "--dry-run", "--all-keys", "--data-root", str(demo_root)], capsys
    )
    assert code == 0
    assert all(f"  {gen_id}" in out.splitlines() for gen_id in evaluations)


# -- ui -------------------------------------------------------------------------------------
def test_ui_refuses_a_port_in_use_with_exit_2(
    demo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as busy:
        busy.bind((LOOPBACK, 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = _run(["ui", "--port", str(port), "--data-root", str(demo_root)], capsys)

    assert code == 2
    assert out == ""
    assert f"127.0.0.1:{port} is already in use" in err


def _start_ui(
    args: list[str], env: dict[str, str], cwd: Path, log: Path
) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "daydreaming_dagster", "ui", *args],
            env=env,
            cwd=cwd,
            preexec_fn=ignore_sigint,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def _wait_for_text(log: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{text!r} not in the log: {log_tail(log)}"
        time.sleep(0.1)


@pytest.mark.slow
def test_ui_serves_dagster_dev_on_the_default_home_and_stops_on_sigterm(
    demo_root: Path, tmp_path: Path
) -> None:
    # No DAGSTER_HOME: the UI must use ./.dagster_home, like `daydream run` (orchestration.get_instance).
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["DAYDREAMING_DATA_ROOT"] = str(demo_root)
    workdir = tmp_path / "project"
    workdir.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "ui.log"
    server = _start_ui(["--port", str(port)], env, workdir, log)
    tree: set[int] = set()
    try:
        wait_until_loaded(base, server, log)
        tree = process_tree(server.pid)
        info = graphql(base, "{ instance { info } }")["data"]["instance"]["info"]
        assert str(workdir / ".dagster_home") in info
        assert (workdir / ".dagster_home" / "dagster.yaml").is_file()
        # dagster dev runs the daemon next to the webserver (runs launched from the UI start).
        daemon = graphql(
            base, "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"
        )
        statuses = daemon["data"]["instance"]["daemonHealth"]["allDaemonStatuses"]
        assert any(status["daemonType"] == "QUEUED_RUN_COORDINATOR" for status in statuses)
        assert len(tree) >= 4, tree  # daydream ui, dagster dev, webserver, daemon (+ code servers)
    finally:
        stopped = stop_with(server, tree, signal.SIGTERM, timeout=30)
    assert stopped.returncode == 0, log_tail(log)
    assert not stopped.left_running, f"still running after SIGTERM: {sorted(stopped.left_running)}"
    assert "Dagster UI stopped" in log.read_text()


@pytest.mark.slow
def test_ui_webserver_only_stops_on_sigint(demo_root: Path, tmp_path: Path) -> None:
    env = dict(os.environ)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "ui.log"
    server = _start_ui(
        ["--webserver-only", "--port", str(port), "--data-root", str(demo_root)], env, tmp_path, log
    )
    tree: set[int] = set()
    try:
        wait_until_loaded(base, server, log)
        tree = process_tree(server.pid)
        # The CLI tells the user where the UI is once it answers.
        _wait_for_text(log, f"Dagster UI ready: {base}", timeout=10)
        groups = graphql(base, "{ assetNodes { groupName } }")["data"]["assetNodes"]
        assert {node["groupName"] for node in groups} == {
            "cohort",
            "generation_draft",
            "generation_essay",
            "generation_evaluation",
            "generation_comparison",
            "results",
        }
    finally:
        # Ctrl-C reaches the CLI even though it started with SIGINT ignored (it installs its own handler).
        stopped = stop_with(server, tree, signal.SIGINT, timeout=15)
    assert stopped.returncode == 0, log_tail(log)
    assert not stopped.left_running, f"still running after SIGINT: {sorted(stopped.left_running)}"


@pytest.mark.slow
def test_ui_server_stops_when_the_cli_process_is_killed(demo_root: Path, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "ui.log"
    args = ["--webserver-only", "--port", str(port), "--data-root", str(demo_root)]
    server = _start_ui(args, dict(os.environ), tmp_path, log)
    tree: set[int] = set()
    try:
        wait_until_loaded(base, server, log)
        tree = process_tree(server.pid) - {server.pid}
        assert tree, "the CLI started no server process"
    finally:
        # SIGKILL cannot be forwarded: the server must notice its parent died (PR_SET_PDEATHSIG).
        server.kill()
        server.wait()
        deadline = time.monotonic() + 15
        left = alive(tree)
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = alive(left)
        kill_all(left)
    assert not left, f"server processes outlived the killed CLI: {sorted(left)}: {log_tail(log)}"
