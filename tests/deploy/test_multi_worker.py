"""The staging profile end to end: Dagster on PostgreSQL, the gens store and IO managers on an
S3-compatible server (moto), Dagster's celery executor with a Redis broker and two celery
workers, the mock model server as its own process, and the Dagster UI reading the same instance.

The demo cohort (with a catalog model the mock serves) runs as two range runs per stage through
``daydream launch``, a second launch of its drafts beside the first. Every generation is paid
for exactly once (mock call count). Then one worker
process is SIGKILLed while evaluation calls are in flight: its run fails, and launching again
pays only for the generations that had not finished.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance

from daydreaming_dagster.automation import report_run_failure
from daydreaming_dagster.cohorts import build_cohort, read_membership
from daydreaming_dagster.data_layer import GensDataLayer
from daydreaming_dagster.types import STAGES
from tests.support.demo import copy_demo
from tests.support.servers import (
    LOOPBACK,
    PostgresServer,
    S3Server,
    create_database,
    drop_database,
    free_port,
    unique_bucket,
    wait_for_port,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LLM_GENERATIONS = {"draft": 8, "essay": 8, "evaluation": 32}  # essay-copy essays call no model


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the multi-worker test must run in CI, but: {reason}", pytrace=False)
    pytest.skip(reason)


class Processes:
    """Every process the test starts, each in its own session, stopped (group-wide) at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("w")
        process = subprocess.Popen(argv, env=env, stdout=kwargs.pop("stdout", log), stderr=subprocess.STDOUT,
                                   start_new_session=True, text=True, **kwargs)
        self.started.append((name, process))
        return process

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self) -> None:
        for _, process in reversed(self.started):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + 15
        for _, process in reversed(self.started):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the group (pool children)
            except (ProcessLookupError, PermissionError):
                pass
            if process.poll() is None:
                process.wait(timeout=10)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> list[int]:
    tree, out, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _sockets_to_port(port: int) -> set[str]:
    """Inodes of established TCP connections whose remote end is 127.0.0.1:port."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state, inode = fields[2], fields[3], fields[9]
        if state == "01" and int(remote.split(":")[1], 16) == port:
            inodes.add(inode)
    return inodes


def _pids_talking_to(port: int, candidates: list[int]) -> list[int]:
    inodes = _sockets_to_port(port)
    found = []
    for pid in candidates:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        if any(link.startswith("socket:[") and link[8:-1] in inodes for link in links):
            found.append(pid)
    return found


def _get_json(url: str, data: bytes | None = None) -> dict:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _graphql_runs(port: int) -> dict[str, dict]:
    query = "{ runsOrError(limit: 100) { ... on Runs { results { runId status tags { key value } } } } }"
    answer = _get_json(f"http://{LOOPBACK}:{port}/graphql", json.dumps({"query": query}).encode())
    return {r["runId"]: r for r in answer["data"]["runsOrError"]["results"]}


def _launch(processes: Processes, env: dict[str, str], name: str, *stages: str) -> subprocess.Popen:
    argv = [str(BIN / "daydream"), "launch", "demo", "--no-build", "--split", "2", "--parallel", "2"]
    for stage in stages:
        argv += ["--stage", stage]
    return processes.start(name, argv, env)


def _run_lines(text: str) -> list[tuple[str, str, str]]:
    """(stage, run_id, ok|FAILED) from `daydream launch` output."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0] in STAGES and parts[2] == "run":
            rows.append((parts[0], parts[3], parts[4]))
    return rows


def _run_errors(dagster_home: Path, text: str) -> str:
    """The failure messages of the runs a `daydream launch` output names (for assertion messages)."""
    from dagster import DagsterInstance

    out = []
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        for _, run_id, state in _run_lines(text):
            if state == "ok":
                continue
            for record in instance.all_logs(run_id):
                event = record.dagster_event
                if event is None:
                    continue
                error = getattr(event.event_specific_data, "error", None)
                if error is not None:
                    out.append(f"{run_id} {event.event_type_value} {event.step_key}: {error.to_string()[-1500:]}")
    return "\n".join(out)[-8000:]


@pytest.fixture
def dedicated_database(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    database = create_database(postgres_server, prefix="dd_multiworker")
    try:
        yield database
    finally:
        drop_database(postgres_server, database.database)


def _start_moto(processes: Processes) -> S3Server:
    """A moto S3 server logging to a file. (Not the session ``s3_server`` fixture: it pipes the
    server's request log into a pipe nobody reads, and after a few hundred requests, as this
    test makes, the server blocks writing to it.)"""
    port = free_port()
    processes.start("moto", [str(BIN / "moto_server"), "-H", LOOPBACK, "-p", str(port)], dict(os.environ))
    wait_for_port(LOOPBACK, port, timeout=30, what="moto_server")
    return S3Server(f"http://{LOOPBACK}:{port}", "multiworker", "multiworker-secret")


def test_demo_cohort_on_two_celery_workers(
    tmp_path: Path, dedicated_database: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_server = shutil.which("redis-server")
    if redis_server is None or not (BIN / "dagster-celery").exists():
        _unavailable("redis-server or dagster-celery is missing (scripts/install_system_deps.sh, uv sync)")
    started = time.monotonic()
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = Processes(logs)
    pg = dedicated_database
    dagster_home = tmp_path / "staging_home"
    dagster_home.mkdir()
    shutil.copy(REPO / "deploy" / "staging" / "dagster.yaml", dagster_home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", pg.url("postgresql+psycopg2"))

    try:
        s3_server = _start_moto(processes)
        bucket = unique_bucket("dd-staging")
        s3_server.client().create_bucket(Bucket=bucket)
        root = f"s3://{bucket}/data"
        aws = {"AWS_ENDPOINT_URL": s3_server.endpoint_url, "AWS_ACCESS_KEY_ID": s3_server.access_key,
               "AWS_SECRET_ACCESS_KEY": s3_server.secret_key, "AWS_DEFAULT_REGION": s3_server.region,
               "AWS_REGION": s3_server.region}
        for key, value in aws.items():
            monkeypatch.setenv(key, value)
        redis_port = free_port()
        processes.start("redis", [redis_server, "--port", str(redis_port), "--bind", LOOPBACK, "--save", "",
                                  "--appendonly", "no"], dict(os.environ))
        mock = processes.start("mock", [str(BIN / "daydream"), "mock-llm", "--port", "0", "--latency", "1.0"],
                               {**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE)
        first_line = mock.stdout.readline()  # type: ignore[union-attr]
        assert first_line.startswith("mock-llm listening on "), first_line
        mock_url = first_line.split()[-1]
        mock_port = int(mock_url.rsplit(":", 1)[1])
        broker = f"redis://{LOOPBACK}:{redis_port}/7"
        env = {
            **os.environ, **aws,
            "DAGSTER_HOME": str(dagster_home),
            "DAGSTER_PG_URL": pg.url("postgresql+psycopg2"),
            "DAYDREAMING_ENV": "staging",
            "DAYDREAMING_DATA_ROOT": root,
            "DAYDREAMING_S3_BUCKET": bucket,
            "DAYDREAMING_S3_ENDPOINT_URL": s3_server.endpoint_url,
            "DAYDREAMING_PG_HOST": pg.host, "DAYDREAMING_PG_PORT": str(pg.port), "DAYDREAMING_PG_DB": pg.database,
            "DAYDREAMING_PG_USER": pg.user, "DAYDREAMING_PG_PASSWORD": pg.password or "unused",
            "DAYDREAMING_EXECUTOR": "celery",
            "DAYDREAMING_CELERY_BROKER": broker,
            "DAYDREAMING_CELERY_BACKEND": broker,
            "DAYDREAMING_LLM_BASE_URL": f"{mock_url}/v1",
            "DAYDREAMING_STEP_RETRIES": "0",
            "PYTHONUNBUFFERED": "1",
            "PYTHONFAULTHANDLER": "1",  # a hung worker killed with SIGABRT prints its stacks in its log
        }
        wait_for_port(LOOPBACK, redis_port, timeout=20, what="redis-server")

        # The cohort is built locally (spec compilation reads local files) and the whole data
        # root (catalogs, membership, metadata seeds) is uploaded to the object store.
        local = copy_demo(tmp_path / "local", mock_model=True)
        build_cohort(str(local), "demo")
        client = s3_server.client()
        for path in local.rglob("*"):
            if path.is_file():
                client.upload_file(str(path), bucket, f"data/{path.relative_to(local).as_posix()}")

        web_port = free_port()
        processes.start("webserver", [str(BIN / "dagster-webserver"), "-h", LOOPBACK, "-p", str(web_port),
                                      "-m", "daydreaming_dagster.definitions"], env)
        workers = [
            processes.start(f"worker{i}", [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                                           "-y", str(REPO / "deploy" / "staging" / "celery.yaml"), "-n", f"w{i}",
                                           "--", "--concurrency=1", "--pool=prefork"], env)
            for i in (1, 2)
        ]
        deadline = time.monotonic() + 90
        while not all(" ready." in processes.log(f"worker{i}") for i in (1, 2)):
            assert time.monotonic() < deadline, processes.log("worker1")[-3000:] + processes.log("worker2")[-3000:]
            assert all(w.poll() is None for w in workers), processes.log("worker1")[-3000:]
            time.sleep(0.5)

        # 1. Drafts and essays: two range runs per stage, steps on the two workers; a second
        # launch of the drafts at the same time pays for nothing (claims: each call once).
        first = _launch(processes, env, "launch1", "draft", "essay")
        beside = _launch(processes, env, "launch1b", "draft")
        assert first.wait(timeout=240) == 0, _run_errors(dagster_home, processes.log("launch1"))
        assert beside.wait(timeout=240) == 0, _run_errors(dagster_home, processes.log("launch1b"))
        runs_ok = _run_lines(processes.log("launch1"))
        assert [(s, state) for s, _, state in runs_ok] == [("draft", "ok")] * 2 + [("essay", "ok")] * 2
        stats = _get_json(f"{mock_url}/stats")
        assert stats["total"] == LLM_GENERATIONS["draft"] + LLM_GENERATIONS["essay"]  # no duplicate calls
        steps_done = {w: processes.log(f"worker{w}").count("] succeeded in ") for w in (1, 2)}
        assert all(n > 0 for n in steps_done.values()), f"both workers should have run steps: {steps_done}"

        # 2. Evaluations: SIGKILL the worker process running a raw step while calls are in flight.
        second = _launch(processes, env, "launch2", "evaluation")
        worker_pids = [pid for w in workers for pid in _descendants(w.pid)]
        victim: list[int] = []
        deadline = time.monotonic() + 120
        while not victim:
            assert time.monotonic() < deadline and second.poll() is None, processes.log("launch2")[-3000:]
            if _get_json(f"{mock_url}/stats")["in_flight"] > 0:
                victim = _pids_talking_to(mock_port, worker_pids)
            time.sleep(0.1)
        os.kill(victim[0], signal.SIGKILL)
        assert second.wait(timeout=240) == 1, processes.log("launch2")[-5000:]
        evaluation_runs = _run_lines(processes.log("launch2"))
        assert sorted(state for _, _, state in evaluation_runs) == ["FAILED", "ok"]

        layer = GensDataLayer.from_root(root)
        members = read_membership(root, "demo")
        unfinished = [g for g in members["evaluation"] if not layer.raw_exists("evaluation", g)]
        assert 0 < len(unfinished) < 32
        calls_before = _get_json(f"{mock_url}/stats")["total"]

        # The failed run's report lists exactly its unfinished generations.
        failed_run_id = next(run_id for _, run_id, state in evaluation_runs if state == "FAILED")
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            report, report_path = report_run_failure(instance, root, instance.get_run_by_id(failed_run_id))
        assert report["cohort_id"] == "demo" and report["stage"] == "evaluation" and report["generations"] == 16
        unparsed = {g for g in members["evaluation"] if not layer.parsed_exists("evaluation", g)}
        assert {item["gen_id"] for item in report["failed"]} == unparsed and set(unfinished) <= unparsed
        assert str(report_path).endswith(f"cohorts/demo/reports/failures_{failed_run_id}.json")

        # 3. Launch again: only the unfinished evaluations call the model.
        third = _launch(processes, env, "launch3", "evaluation")
        assert third.wait(timeout=240) == 0, processes.log("launch3")[-5000:]
        assert _get_json(f"{mock_url}/stats")["total"] - calls_before == len(unfinished)
        for stage in STAGES:
            for gen_id in members[stage]:
                assert layer.parsed_exists(stage, gen_id), f"{stage}/{gen_id} is not finished"

        # 4. The Dagster UI (same PostgreSQL instance) shows every run with its status.
        deadline = time.monotonic() + 120
        while True:
            try:
                ui_runs = _graphql_runs(web_port)
                break
            except OSError:
                assert time.monotonic() < deadline, processes.log("webserver")[-3000:]
                time.sleep(1)
        launched = runs_ok + _run_lines(processes.log("launch1b")) + evaluation_runs + _run_lines(processes.log("launch3"))
        assert len(launched) == 10
        for stage, run_id, state in launched:
            shown = ui_runs[run_id]
            assert shown["status"] == ("SUCCESS" if state == "ok" else "FAILURE")
            tags = {t["key"]: t["value"] for t in shown["tags"]}
            assert tags["daydream/stage"] == stage and tags["daydream/cohort"] == "demo"
            assert tags["daydream/provider"] == "openrouter"
        # How long it took is a figure, not a pass/fail criterion (speed targets live in benchmarks/):
        # on a busy machine every process here is slower, and correctness must not depend on it.
        print(f"multi-worker staging run: {time.monotonic() - started:.0f} s")
    finally:
        processes.stop_all()
