"""Re-run benchmark: what a researcher pays for `daydream run` when little or nothing changed.

Everything runs in a fresh temporary data root and ``DAGSTER_HOME``, each command in its own
process (as a user types it), with the package's bytecode already compiled (``uv sync
--compile-bytecode``). Measured in the same run:

    import_s            python -c "import daydreaming_dagster.definitions" (median of 3)
    fresh_demo_s        first `daydream run demo` (104 generations with its 3-round tournament, offline model), median of 3
                        runs, each in a new data root and DAGSTER_HOME
    noop_demo_s         `daydream run demo` again, nothing to do (median of 3)
    big_generations     generations of a synthetic cohort on the mock server (latency 0)
    big_first_s         its first run (every call made)
    big_noop_s          `daydream run big` again, nothing to do
    edit_expected_calls after editing the template of 1/8 of the drafts: those drafts, their
                        essays and their evaluations
    edit_calls          the calls the re-run made, counted at the mock server
    edit_s              that re-run's wall time

Targets (issue 15): noop_demo_s <= 2 x import_s; big_noop_s <= 5 x import_s; edit_calls ==
edit_expected_calls; fresh_demo_s <= 5 x import_s.

Usage: uv run python benchmarks/rerun.py [--drafts-per-template 250] [--demo-only] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _mock_root import mock_stats, start_mock, write_mock_root

REPO = Path(__file__).resolve().parents[1]
DRAFT_TEMPLATES = 8
FRESH_RUNS = 3
EVALUATIONS_PER_ESSAY = 3


def _timed(argv: list[str], env: dict[str, str], *, check: bool = True) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return elapsed


def _median(argv: list[str], env: dict[str, str], times: int = 3) -> float:
    return statistics.median(_timed(argv, env) for _ in range(times))


def write_big_root(root: Path, drafts_per_template: int) -> None:
    """A data root whose cohort ``big`` has 8 draft templates x ``drafts_per_template``
    replicates, one essay per draft and three evaluations per essay, all on the catalog model
    ``mock``."""
    drafts = {
        f"draft_{index}": ("identity", f"Angle {index}. Concepts:\n{{% for c in concepts %}}- {{{{ c.name }}}}: "
                                       "{{ c.content }}\n{% endfor %}Brainstorm links between them.\n")
        for index in range(DRAFT_TEMPLATES)
    }
    write_mock_root(root, "big", draft_templates=drafts, drafts_per_template=drafts_per_template,
                    evaluations_per_essay=EVALUATIONS_PER_ESSAY)


def _mock_total(url: str) -> int:
    return int(mock_stats(url)["total"])


def run_benchmark(drafts_per_template: int, *, demo_only: bool = False) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix="daydream-rerun-"))
    daydream = str(Path(sys.executable).parent / "daydream")
    env = {**os.environ, "DAGSTER_HOME": str(workdir / "dagster_home")}
    for name in ("DAYDREAMING_DATA_ROOT", "DAYDREAMING_LLM_BASE_URL", "DAYDREAMING_ENV"):
        env.pop(name, None)
    mock = None
    try:
        _timed([sys.executable, "-c", "import daydreaming_dagster.definitions"], env)  # warm the file cache
        import_s = _median([sys.executable, "-c", "import daydreaming_dagster.definitions"], env)
        # Each fresh run gets its own data root and DAGSTER_HOME; the median of three damps
        # the noise of a shared machine as the import's median does.
        fresh_runs = [_timed([daydream, "run", "demo", "--data-root", str(_fresh_demo(workdir / f"demo{n}"))],
                             {**env, "DAGSTER_HOME": str(workdir / f"dagster_home{n}")}) for n in range(FRESH_RUNS)]
        fresh_demo_s = statistics.median(fresh_runs)
        demo = workdir / "demo0"
        noop_demo_s = _median([daydream, "run", "demo", "--data-root", str(demo)],
                              {**env, "DAGSTER_HOME": str(workdir / "dagster_home0")})
        if demo_only:
            return _demo_figures(import_s, fresh_demo_s, noop_demo_s, fresh_runs)

        big = workdir / "big"
        write_big_root(big, drafts_per_template)
        mock, url = start_mock(latency=0)
        big_env = {**env, "DAYDREAMING_LLM_BASE_URL": f"{url}/v1"}
        run_big = [daydream, "run", "big", "--data-root", str(big), "--concurrency", "64"]
        big_first_s = _timed(run_big, big_env)
        generations = sum(1 for _ in (big / "gens").glob("*/*"))
        calls_before = _mock_total(url)
        big_noop_s = _timed(run_big, big_env)
        noop_calls = _mock_total(url) - calls_before

        template = big / "1_raw" / "templates" / "draft" / "draft_0.txt"
        template.write_text(template.read_text() + "Be brief.\n")
        expected = drafts_per_template * (1 + 1 + EVALUATIONS_PER_ESSAY)
        calls_before = _mock_total(url)
        edit_s = _timed(run_big, big_env)
        edit_calls = _mock_total(url) - calls_before
    finally:
        if mock is not None:
            mock.terminate()
            mock.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    figures = _demo_figures(import_s, fresh_demo_s, noop_demo_s, fresh_runs)
    targets = figures.pop("targets")
    load = figures.pop("load_average")
    return {
        **figures,
        "big_generations": generations,
        "big_first_s": round(big_first_s, 3),
        "big_noop_s": round(big_noop_s, 3),
        "big_noop_ratio": round(big_noop_s / import_s, 2),
        "big_noop_calls": noop_calls,
        "edit_expected_calls": expected,
        "edit_calls": edit_calls,
        "edit_s": round(edit_s, 3),
        "targets": {
            **targets,  # type: ignore[dict-item]
            "big_noop_within_5x_import": big_noop_s <= 5 * import_s,
            "edit_calls_exact": edit_calls == expected,
        },
        "load_average": load,
    }


def _fresh_demo(root: Path) -> Path:
    """A data root with the shipped catalogs and the demo spec, nothing generated."""
    shutil.copytree(REPO / "data" / "1_raw", root / "1_raw")
    shutil.copytree(REPO / "data" / "cohorts" / "demo" / "spec", root / "cohorts" / "demo" / "spec")
    return root


def _demo_figures(import_s: float, fresh_demo_s: float, noop_demo_s: float,
                  fresh_runs: list[float]) -> dict[str, object]:
    return {
        "import_s": round(import_s, 3),
        "fresh_demo_s": round(fresh_demo_s, 3),
        "fresh_demo_runs_s": [round(x, 3) for x in fresh_runs],
        "fresh_demo_ratio": round(fresh_demo_s / import_s, 2),
        "noop_demo_s": round(noop_demo_s, 3),
        "noop_demo_ratio": round(noop_demo_s / import_s, 2),
        "targets": {
            "noop_demo_within_2x_import": noop_demo_s <= 2 * import_s,
            "fresh_demo_within_5x_import": fresh_demo_s <= 5 * import_s,
        },
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drafts-per-template", type=int, default=250,
                        help="replicates per draft template (8 templates; x5 generations each; default 250 -> 10,000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--demo-only", action="store_true",
                        help="measure only the import and the demo runs (skip the 10,000-generation part)")
    args = parser.parse_args()
    result = run_benchmark(args.drafts_per_template, demo_only=args.demo_only)
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:<22} {value}")


if __name__ == "__main__":
    main()
