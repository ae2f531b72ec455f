"""The planner and the stage functions agree, generation by generation, on a randomised store.

Each case builds the demo cohort, runs it to completion, then damages the store at random (prompts
missing or stale, raw outputs missing or rejected, parsed outputs missing, failed or unparseable,
a template edited), picks random stages and forces, plans, and then runs the real stage batch
functions over every member of the chosen stages. What each phase of each generation did must
be what the plan said: rendered/reused/blocked prompts, model calls, copies, parses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import random
from pathlib import Path

import pytest

from daydreaming_dagster.cohorts import build_cohort
from daydreaming_dagster.data_layer import GensDataLayer
from daydreaming_dagster.llm.base import GenerationRequest, GenerationResult, LLMProvider
from daydreaming_dagster.llm.offline import OfflineProvider
from daydreaming_dagster.planning import GenerationPlan, plan_cohort
from daydreaming_dagster.stages.batch import run_parsed_batch, run_prompt_batch, run_raw_batch_sync
from daydreaming_dagster.stages.context import StageContext
from daydreaming_dagster.stages.settings import StageSettings
from daydreaming_dagster.types import STAGES, Stage
from tests.support.demo import copy_demo


class NonceProvider(LLMProvider):
    """The offline provider, with every draft and essay line marked by a call counter: a
    regenerated output always differs from the old one (as a sampled model's would), so a
    regenerated parent really changes its children's prompts."""

    name = "offline"
    serial = itertools.count(1)  # across instances: a later run never repeats an earlier mark

    def __init__(self) -> None:
        self.inner = OfflineProvider()
        self.calls: list[str] = []

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        result = await self.inner.generate(request)
        self.calls.append(request.gen_id)
        if request.stage == "evaluation":
            return result
        n = next(NonceProvider.serial)
        text = "\n".join(f"{line} [{n}]" if line.strip() else line for line in result.text.splitlines())
        return dataclasses.replace(result, text=text)


def _run_stages(root: Path, stages: list[Stage], force: set[Stage], provider: LLMProvider) -> dict:
    """Run the stage batch functions over every member; return {(stage, gen_id): {phase: status}}."""
    from daydreaming_dagster.cohorts import read_membership

    members = read_membership(root, "demo")
    ctx = StageContext.for_root(root)
    seen: dict[tuple[str, str], dict[str, object]] = {}
    for stage in stages:
        settings = StageSettings(force=stage in force)
        gen_ids = members[stage]
        report, prompts = run_prompt_batch(ctx, stage, gen_ids, settings)
        for s in report.statuses:
            seen.setdefault((stage, s.gen_id), {})["prompt"] = s
        raw = run_raw_batch_sync(ctx, stage, gen_ids, settings, provider, prompts=prompts)
        for s in raw.statuses:
            seen[(stage, s.gen_id)]["raw"] = s
        parsed = run_parsed_batch(StageContext.for_root(root), stage, gen_ids, settings)
        for s in parsed.statuses:
            seen[(stage, s.gen_id)]["parsed"] = s
    return seen


def _damage(root: Path, rng: random.Random) -> None:
    layer = GensDataLayer.from_root(root)
    for stage in STAGES:
        for gen_id in layer.list_generations(stage):
            roll = rng.random()
            if roll < 0.08:
                layer.prompt_path(stage, gen_id).unlink()
            elif roll < 0.16:
                layer.prompt_path(stage, gen_id).write_text("an older prompt\n")
            elif roll < 0.24:
                layer.raw_path(stage, gen_id).unlink()
            elif roll < 0.32:
                meta = layer.read_raw_metadata(stage, gen_id)
                layer.write_raw_metadata(stage, gen_id, {**meta, "failed": True, "failure_reason": "min_lines"})
            elif roll < 0.40:
                layer.parsed_path(stage, gen_id).unlink()
            elif roll < 0.46:
                meta = layer.read_parsed_metadata(stage, gen_id)
                layer.parsed_path(stage, gen_id).unlink()
                layer.write_parsed_metadata(stage, gen_id, {**meta, "failed": True, "success": False})
            elif roll < 0.52 and stage == "evaluation":
                layer.raw_path(stage, gen_id).write_text("no score in this answer\n")
                layer.clear_parsed(stage, gen_id)
    if rng.random() < 0.5:
        stage = rng.choice(STAGES)
        templates = sorted((root / "1_raw" / "templates" / stage).glob("*.txt"))
        edited = rng.choice(templates)
        edited.write_text(edited.read_text() + "\n(edited)\n")


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(path.relative_to(folder).as_posix().encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _expected(plan: GenerationPlan, phase: str) -> set[str]:
    """Batch statuses a planned action allows (a parse may fail: the plan says it runs)."""
    action = getattr(plan, phase)
    return {
        "reuse": {"reused"},
        "render": {"done"},
        "call": {"done"},
        "copy": {"done"},
        "parse": {"done", "failed"},
        "blocked": {"failed"},
    }[action]


@pytest.mark.parametrize("seed", range(24))
def test_plan_matches_what_the_stage_functions_do(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    root = copy_demo(tmp_path / "data")
    build_cohort(root, "demo")
    _run_stages(root, list(STAGES), set(), NonceProvider())
    _damage(root, rng)
    stages = [s for s in STAGES if rng.random() < 0.7] or [rng.choice(STAGES)]
    force = {s for s in stages if rng.random() < 0.2}

    membership = build_cohort(root, "demo").membership
    before = _tree_digest(root / "gens")
    plan = plan_cohort(str(root), "demo", membership, stages=stages, force=force)
    assert _tree_digest(root / "gens") == before, "planning wrote to the gens store"

    provider = NonceProvider()
    seen = _run_stages(root, stages, force, provider)
    called = set(provider.calls)
    mismatches = []
    for stage in stages:
        for planned in plan.stages[stage].generations:
            statuses = seen[(stage, planned.gen_id)]
            for phase in ("prompt", "raw", "parsed"):
                status = statuses[phase]
                if status.status not in _expected(planned, phase):
                    mismatches.append(f"{stage}/{planned.gen_id} {phase}: planned {getattr(planned, phase)} "
                                      f"({planned.reason}), ran {status.status} {status.reason or ''} {status.error or ''}")
            if (planned.raw == "call") != (planned.gen_id in called):
                mismatches.append(f"{stage}/{planned.gen_id}: planned raw {planned.raw}, model called: "
                                  f"{planned.gen_id in called}")
    assert not mismatches, f"seed {seed}, stages {stages}, force {sorted(force)}:\n" + "\n".join(mismatches)
    assert len(provider.calls) == sum(plan.stages[s].to_call for s in stages)
