"""Shared quota benchmark: two `daydream run` processes, one model, one requests-per-minute quota.

Starts ``daydream mock-llm`` with a per-model quota (``--rpm``, a sliding minute: more get 429),
writes a data root with two cohorts of the same model (different generations), and runs
``daydream run`` for both at once, each in its own process, with the client told the same
quota (``DAYDREAMING_LLM_RPM``). The processes share the quota through the data root's
file-backed schedule. Prints:

    calls              answered calls (both processes)
    quota_429          429s the server's quota sent (all, and after the first minute)
    rate_per_min       answered calls per minute between the first and the last call
    use_of_quota       rate_per_min / rpm (target: >= 0.9, and no quota 429 after the first minute)
    wall_s             time until both processes finished

Usage: uv run python benchmarks/shared_quota.py [--rpm 120] [--drafts 40] [--latency 0.5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _mock_root import mock_stats, start_mock, write_mock_root

DRAFT_TEMPLATE = ("essay_idea_last", "Concepts:\n{% for c in concepts %}- {{ c.name }}: {{ c.content }}\n"
                  "{% endfor %}Put your best idea in <essay-idea stage=\"1\">...</essay-idea>.\n")


def write_root(root: Path, drafts: int) -> None:
    """Cohorts ``left`` and ``right``: ``drafts`` drafts each (other replicates, so other
    generations), one essay per draft, two evaluations per essay, all on the model ``mock``."""
    write_mock_root(root, "left", draft_templates={"bench_draft": DRAFT_TEMPLATE},
                    drafts_per_template=drafts, evaluations_per_essay=2)
    left = (root / "cohorts" / "left" / "spec" / "config.yaml").read_text()
    replicates = ", ".join(str(i) for i in range(1, drafts + 1))
    shifted = ", ".join(str(i) for i in range(drafts + 1, 2 * drafts + 1))
    right = root / "cohorts" / "right" / "spec" / "config.yaml"
    right.parent.mkdir(parents=True)
    right.write_text(left.replace(f"draft_template_replicate: [{replicates}]", f"draft_template_replicate: [{shifted}]"))


def run_benchmark(rpm: int, drafts: int, latency: float) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="daydream-quota-"))
    proc, url = start_mock(latency, "--rpm", str(rpm))
    try:
        root = workdir / "data"
        write_root(root, drafts)
        env = {**os.environ, "DAGSTER_HOME": str(workdir / "dagster_home"), "DAYDREAMING_LLM_BASE_URL": f"{url}/v1",
               "DAYDREAMING_LLM_RPM": str(rpm)}
        clock = time.perf_counter()
        runs = [subprocess.Popen([sys.executable, "-m", "daydreaming_dagster", "run", cohort, "--no-report",
                                  "--data-root", str(root)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True) for cohort in ("left", "right")]
        outputs = [run.communicate()[0] for run in runs]
        wall = time.perf_counter() - clock
        stats = mock_stats(url)
        answered = sorted(r["at"] for r in stats["requests"] if r["status"] == 200)
        refused = [r["at"] for r in stats["requests"] if r["status"] == 429]
        first = min(stats["arrivals"])
        span = answered[-1] - answered[0] if len(answered) > 1 else 0.0
        rate = (len(answered) - 1) / span * 60 if span else 0.0
        return {
            "rpm": rpm,
            "processes": 2,
            "exit_codes": [run.returncode for run in runs],
            "calls": stats["by_status"].get("200", 0),
            "quota_429": sum(stats["quota_rejections"].values()),
            "quota_429_after_first_minute": sum(1 for at in refused if at - first > 60),
            "rate_per_min": round(rate, 1),
            "use_of_quota": round(rate / rpm, 3),
            "wall_s": round(wall, 1),
            "errors": [out[-1500:] for run, out in zip(runs, outputs, strict=True) if run.returncode],
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rpm", type=int, default=120)
    parser.add_argument("--drafts", type=int, default=40, help="drafts per cohort (4 calls each)")
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    figures = run_benchmark(args.rpm, args.drafts, args.latency)
    if args.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        print(f"{key:>30}: {value}")


if __name__ == "__main__":
    main()
