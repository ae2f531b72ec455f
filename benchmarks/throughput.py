"""Throughput benchmark: the whole pipeline through Dagster against the mock model server.

Starts ``daydream mock-llm`` in its own process, writes a temporary data root with N drafts
(one essay each, two evaluations each), runs every stage through Dagster exactly as
``daydream run`` does (one run per stage over its key range, the runs overlapping with no
stage barrier when calls are slow: a generation starts as soon as its parent is parsed; or,
with ``--chunks N``, the cohort in N chunks whose stage runs overlap), and prints:

    wall_s       wall time of the three stage runs (cohort build excluded, reported apart)
    calls        model calls the mock server answered
    cpu_s        CPU seconds (user + system) the pipeline's process spent in those runs
    calls_per_s  calls / wall_s
    ideal_s      the provider bound: the sum of the answered calls' latencies (as the mock server
                 logged them) / concurrency, a lower bound on wall_s
    ratio        ideal_s / wall_s (1.0 = bounded by the provider only)
    chunks, runs how the cohort was split and how many Dagster runs that cost

The Dagster instance matters: every partition of a range run writes a materialisation event.
``--instance postgres`` (default when a PostgreSQL server answers on ``DAYDREAMING_PG_URL`` or
127.0.0.1:5432) uses a throwaway database and batched event writes, as a team deployment
would; ``--instance sqlite`` uses the embedded default of a laptop (slower per generation).

Latencies are fixed (``--latency``) or heavy-tailed like long generations of real providers
(``--latency-dist lognormal --latency-median 2 --latency-p99 20``, seeded by ``--seed``).

Usage: uv run python benchmarks/throughput.py [--drafts 256] [--latency 2] [--concurrency 64]
       [--latency-dist fixed|lognormal] [--latency-median S] [--latency-p99 S] [--seed N]
       [--chunks N] [--instance postgres|sqlite] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from _mock_root import mock_stats, start_mock, write_mock_root

DRAFT_TEMPLATE = (
    "essay_idea_last",
    "Concepts:\n{% for c in concepts %}- {{ c.name }}: {{ c.content }}\n{% endfor %}"
    "Brainstorm links between them. Put your best idea in <essay-idea stage=\"1\">...</essay-idea>.\n",
)


def write_data_root(root: Path, drafts: int) -> None:
    """``drafts`` drafts of one template, one essay each, two evaluations each (cohort ``bench``)."""
    write_mock_root(root, "bench", draft_templates={"bench_draft": DRAFT_TEMPLATE},
                    drafts_per_template=drafts, evaluations_per_essay=2)


def _process_cpu_s() -> float:
    """CPU seconds (user + system) of this process so far: the pipeline's, not the mock's."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pg_admin_url() -> str:
    return os.environ.get("DAYDREAMING_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(_pg_admin_url(), connect_timeout=2):
            return True
    except Exception:
        return False


def _pg_database(action: str, name: str) -> None:
    import psycopg

    with psycopg.connect(_pg_admin_url(), autocommit=True) as conn:
        if action == "CREATE":
            conn.execute(f'CREATE DATABASE "{name}"')
        else:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _instance_yaml(instance: str, database: str) -> str:
    if instance == "sqlite":
        return "telemetry:\n  enabled: false\n"
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(_pg_admin_url())
    url = urlunsplit(("postgresql+psycopg2", parts.netloc, f"/{database}", "", ""))
    return f"storage:\n  postgres:\n    postgres_url: {url}\ntelemetry:\n  enabled: false\n"


def run_benchmark(
    drafts: int, latency: float, concurrency: int, instance_kind: str = "sqlite", chunks: int | None = None,
    latency_args: tuple[str, ...] = (),
) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="daydream-bench-"))
    database = f"daydream_bench_{os.getpid()}"
    if instance_kind == "postgres":
        _pg_database("CREATE", database)
    proc, url = start_mock(latency, *latency_args)
    try:
        home = workdir / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text(_instance_yaml(instance_kind, database))
        os.environ["DAGSTER_HOME"] = str(home)
        os.environ["DAYDREAMING_LLM_BASE_URL"] = f"{url}/v1"
        root = workdir / "data"
        write_data_root(root, drafts)

        from daydreaming_dagster.assets.generation import GENERATION_ASSETS
        from daydreaming_dagster.cohorts import build_cohort
        from daydreaming_dagster.definitions import build_resources
        from daydreaming_dagster.llm.openai_compatible import warm_up
        from daydreaming_dagster.llm.scope import close_call_scope
        from daydreaming_dagster.orchestration import (
            in_process_instance,
            plan_chunks,
            register_keys,
            run_cohort,
        )
        from daydreaming_dagster.resources import LLMResource
        from daydreaming_dagster.types import STAGES

        warm_up()  # process start-up (the SDK's imports), as `daydream run` does off the clock
        build_clock = time.perf_counter()
        membership = build_cohort(root, "bench").membership
        members = {stage: membership.gen_ids(stage) for stage in STAGES}
        parents = membership.parents()
        instance = in_process_instance()
        for stage, gen_ids in members.items():
            register_keys(instance, stage, gen_ids)
        build_s = time.perf_counter() - build_clock

        plan = plan_chunks(members, parents, chunks or 1)
        scope = f"bench-{os.getpid()}"
        llm = LLMResource(concurrency=concurrency, timeout_s=max(300.0, latency * 10), scope=scope)
        resources = build_resources(str(root), llm=llm)
        clock = time.perf_counter()
        started = time.monotonic()  # the mock's clock too (CLOCK_MONOTONIC is system-wide)
        cpu_clock = _process_cpu_s()
        try:
            outcomes = run_cohort(instance, GENERATION_ASSETS, plan, STAGES, resources,
                                  pipeline=scope if chunks is None else None)
        finally:
            close_call_scope(scope)
        failed_runs = sum(0 if outcome.success else 1 for outcome in outcomes.values())
        wall = time.perf_counter() - clock
        ended = time.monotonic()
        cpu = _process_cpu_s() - cpu_clock

        stats = mock_stats(url)
        calls = int(stats["total"])
        answered = [r for r in stats["requests"] if r["status"] == 200]
        parsed = sum(1 for stage, ids in members.items() for g in ids if (root / "gens" / stage / g / "parsed.txt").is_file())
        generations = sum(len(ids) for ids in members.values())
        ideal = float(stats["latency_sum_s"]) / concurrency
        instance.dispose()
        return {
            "instance": instance_kind,
            "drafts": drafts,
            "latency": " ".join(latency_args) if latency_args else f"fixed {latency:g} s",
            "latency_sum_s": round(float(stats["latency_sum_s"]), 3),
            "slowest_call_s": round(max(stats["latencies"], default=0.0), 3),
            "concurrency": concurrency,
            "generations": generations,
            "parsed": parsed,
            "failed_stage_runs": failed_runs,
            "cohort_build_s": round(build_s, 3),
            "wall_s": round(wall, 3),
            "chunks": len(plan) if chunks is not None else "none (pipelined)",
            "runs": sum(len(outcome.run_ids) for outcome in outcomes.values()),
            "calls": calls,
            "cpu_s": round(cpu, 3),
            "calls_per_s": round(calls / wall, 2) if wall else None,
            # Where the time beyond the bound went: before the first call, after the last answer.
            "to_first_call_s": round(min(stats["arrivals"]) - started, 3) if stats["arrivals"] else None,
            "after_last_answer_s": round(ended - max(r["at"] + r["latency_s"] for r in answered), 3)
            if answered else None,
            "ideal_s": round(ideal, 3),
            "ratio": round(ideal / wall, 3) if wall else None,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
        if instance_kind == "postgres":
            _pg_database("DROP", database)


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore", message=r".*is currently in beta.*")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drafts", type=int, default=256)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-dist", choices=["fixed", "lognormal"], default="fixed")
    parser.add_argument("--latency-median", type=float, default=2.0)
    parser.add_argument("--latency-p99", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0, help="seed of the mock server's latency draws")
    parser.add_argument("--instance", choices=["postgres", "sqlite"], default=None,
                        help="Dagster instance storage (default: postgres when reachable, else sqlite)")
    parser.add_argument("--chunks", type=int, default=None,
                        help="cohort chunks whose stages overlap (default: none, pipelined as `daydream run`; "
                        "1 = stage by stage)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    instance_kind = args.instance or ("postgres" if postgres_available() else "sqlite")
    latency_args: tuple[str, ...] = ()
    if args.latency_dist == "lognormal":
        latency_args = ("--latency-dist", "lognormal", "--latency-median", str(args.latency_median),
                        "--latency-p99", str(args.latency_p99), "--seed", str(args.seed))
    figures = run_benchmark(args.drafts, args.latency, args.concurrency, instance_kind, args.chunks, latency_args)
    if args.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        print(f"{key:>18}: {value}")


if __name__ == "__main__":
    main()
