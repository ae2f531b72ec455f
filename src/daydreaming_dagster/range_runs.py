"""Several runs of a stage job at once, one per key range, each a separate run-coordinator
process (``execute_job`` on the reconstructable job, so its steps go to whatever executor the
definitions use, e.g. celery workers on other machines): ``daydream launch``.

Kept apart from :mod:`.automation` because it resolves jobs through :mod:`.definitions`, which
imports the automation jobs and sensors: this module sits above both, so neither imports the other
back.
"""

# No `from __future__ import annotations`: kept like automation.py for Dagster's inspection.
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from dagster import DagsterInstance, JobDefinition, execute_job
from dagster._core.definitions.reconstruct import build_reconstructable_job

from .automation import STAGE_JOBS, ensure_pool_limit, stage_providers, stage_run_ranges
from .definitions import defs
from .failures import RANGE_END_TAG, RANGE_START_TAG, STAGE_TAG
from .orchestration import get_instance
from .types import Stage

__all__ = ["RangeRun", "ensure_pool_limit", "execute_stage_range", "launch_stage_ranges", "resolved_stage_job",
           "stage_providers", "stage_run_ranges"]


# -- launching range runs on the configured executor ------------------------------------------
def resolved_stage_job(stage: str) -> JobDefinition:
    """The stage job as the code location defines it (reconstruction target for workers)."""
    return defs.resolve_job_def(STAGE_JOBS[stage].name)  # type: ignore[index]


def execute_stage_range(stage: Stage, first: str, last: str, tags: dict[str, str] | None = None,
                        instance: DagsterInstance | None = None) -> tuple[str, bool]:
    """Execute one run of ``<stage>_generation_job`` over the key range ``first..last`` in this
    process (the run coordinator); steps run where the job's executor sends them. Returns
    ``(run_id, success)``."""
    # By module name, not __name__: run processes execute this module as __main__.
    recon = build_reconstructable_job("daydreaming_dagster.range_runs", "resolved_stage_job",
                                      reconstructable_args=(stage,))
    run_tags = {**(tags or {}), STAGE_TAG: stage, RANGE_START_TAG: first, RANGE_END_TAG: last}
    config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    owned = instance is None
    inst = get_instance() if owned else instance
    try:
        with execute_job(recon, instance=inst, tags=run_tags, run_config=config, raise_on_error=False) as result:
            return result.run_id, result.success
    finally:
        if owned:
            inst.dispose()


@dataclass(frozen=True)
class RangeRun:
    """One launched range run."""

    stage: str
    first: str
    last: str
    run_id: str | None
    success: bool
    error: str = ""


def launch_stage_ranges(stage: Stage, ranges: Sequence[Sequence[str]], tags: dict[str, str] | None = None,
                        *, parallel: int = 2, env: dict[str, str] | None = None) -> list[RangeRun]:
    """Run one range run per key range, up to ``parallel`` at once, each in its own process
    (``python -m daydreaming_dagster.range_runs``); wait for all and return their outcomes."""
    pending = [list(r) for r in ranges if r]
    running: list[tuple[list[str], subprocess.Popen[str]]] = []
    done: list[RangeRun] = []
    while pending or running:
        while pending and len(running) < max(1, parallel):
            keys = pending.pop(0)
            payload = json.dumps({"stage": stage, "first": keys[0], "last": keys[-1], "tags": tags or {}})
            process = subprocess.Popen([sys.executable, "-m", "daydreaming_dagster.range_runs", payload], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, env=env)
            running.append((keys, process))
        keys, process = running.pop(0)
        out, err = process.communicate()
        try:
            answer = json.loads(out.strip().splitlines()[-1])
            done.append(RangeRun(stage, keys[0], keys[-1], answer["run_id"], bool(answer["success"])))
        except (IndexError, ValueError, KeyError):
            done.append(RangeRun(stage, keys[0], keys[-1], None, False, (err or out)[-2000:]))
    return done


def _main(argv: Sequence[str]) -> None:
    request = json.loads(argv[0])
    run_id, success = execute_stage_range(request["stage"], request["first"], request["last"], request["tags"])
    print(json.dumps({"run_id": run_id, "success": success}))


if __name__ == "__main__":
    _main(sys.argv[1:])
