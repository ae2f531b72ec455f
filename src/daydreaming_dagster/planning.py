"""Plan a cohort run before running it: which generations need which phase (no Dagster).

For the requested stages and forces, :func:`plan_cohort` walks the cohort in stage order and,
for every generation, asks the same reuse rules the stage functions ask
(:mod:`daydreaming_dagster.stages.reuse`) and renders prompts with the same function
(:func:`~daydreaming_dagster.stages.prompt.build_prompt`), so a plan says what a run will do:

- ``prompt``: ``reuse`` (identical prompt on disk), ``render`` (new or changed: raw and parsed
  of that generation are then redone) or ``blocked`` (cannot render: the parent has no parsed
  output and will not get one, or the template/combination is broken);
- ``raw``: ``reuse``, ``call`` (a model call), ``copy`` (copy mode, no call) or ``blocked``;
- ``parsed``: ``reuse``, ``parse`` or ``blocked``.

A parent whose parsed text a run will reproduce without a model call (a re-parse of kept raw
output, a copy) is parsed in memory, so its children are planned against the text they will
see. A parent that calls a model makes its children ``render`` (reason ``parent regenerates``):
the new text is not known before the call. Nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .cohorts.membership import Membership, MembershipRow
from .data_layer import GenerationMetadata, GensDataLayer
from .errors import DaydreamError
from .parsers import ParseError
from .stages.context import StageContext
from .stages.parsed import template_parser
from .stages.prompt import build_prompt
from .stages.reuse import parsed_reusable, prompt_reusable, raw_reusable
from .stages.settings import StageSettings
from .types import PHASES, STAGES, Phase, Stage, parent_stage

PromptAction = Literal["reuse", "render", "blocked"]
RawAction = Literal["reuse", "call", "copy", "blocked"]
ParsedAction = Literal["reuse", "parse", "blocked"]


@dataclass(frozen=True)
class GenerationPlan:
    """What a run will do with one generation."""

    stage: Stage
    gen_id: str
    prompt: PromptAction
    raw: RawAction
    parsed: ParsedAction
    reason: str = ""
    """Why the first phase that is not reused runs (or is blocked); empty when all is reused."""
    llm_model_id: str | None = None
    """Model a ``call`` goes to."""

    @property
    def has_work(self) -> bool:
        """True when a run writes something for this generation (render, call, copy or parse)."""
        return self.first_phase is not None

    @property
    def first_phase(self) -> Phase | None:
        """The earliest phase that runs (``None``: everything reused or blocked)."""
        if self.prompt == "render":
            return "prompt"
        if self.raw in ("call", "copy"):
            return "raw"
        if self.parsed == "parse":
            return "parsed"
        return None

    @property
    def blocked(self) -> bool:
        """True when some phase cannot run (its input is missing)."""
        return "blocked" in (self.prompt, self.raw, self.parsed)


@dataclass(frozen=True)
class StagePlan:
    """The plan of one stage, in membership order."""

    stage: Stage
    generations: tuple[GenerationPlan, ...]

    def count(self, phase: Phase, action: str) -> int:
        return sum(1 for g in self.generations if getattr(g, phase) == action)

    @property
    def to_render(self) -> int:
        return self.count("prompt", "render")

    @property
    def to_call(self) -> int:
        return self.count("raw", "call")

    @property
    def to_copy(self) -> int:
        return self.count("raw", "copy")

    @property
    def to_parse(self) -> int:
        return self.count("parsed", "parse")

    @property
    def reused(self) -> int:
        """Generations with nothing to do and nothing blocked."""
        return sum(1 for g in self.generations if not g.has_work and not g.blocked)

    @property
    def blocked(self) -> list[GenerationPlan]:
        return [g for g in self.generations if g.blocked]

    @property
    def work(self) -> list[str]:
        """Gen ids with something to run, in membership order."""
        return [g.gen_id for g in self.generations if g.has_work]

    @property
    def first_phase(self) -> Phase | None:
        """The earliest phase any generation of the stage runs."""
        phases = {g.first_phase for g in self.generations}
        return next((p for p in PHASES if p in phases), None)

    def calls_by_model(self) -> dict[str, int]:
        calls: dict[str, int] = {}
        for g in self.generations:
            if g.raw == "call" and g.llm_model_id:
                calls[g.llm_model_id] = calls.get(g.llm_model_id, 0) + 1
        return calls


@dataclass(frozen=True)
class CohortPlan:
    """The plan of a cohort run: one :class:`StagePlan` per requested stage."""

    cohort_id: str
    stages: dict[Stage, StagePlan] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    """Lines about members the plan leaves out on purpose (a gate, adaptive rounds: the plan is
    then this round's, and the notes give the worst case)."""

    @property
    def has_work(self) -> bool:
        return any(plan.work for plan in self.stages.values())

    @property
    def blocked(self) -> list[GenerationPlan]:
        return [g for plan in self.stages.values() for g in plan.blocked]

    def work(self) -> dict[Stage, list[str]]:
        return {stage: plan.work for stage, plan in self.stages.items()}

    def render(self) -> str:
        """A plain-text table for the terminal."""
        out = [f"plan for cohort {self.cohort_id}:",
               f"{'stage':<11} {'total':>7} {'render':>7} {'call':>7} {'copy':>7} {'parse':>7} {'reused':>7} {'blocked':>8}"]
        for stage, plan in self.stages.items():
            out.append(f"{stage:<11} {len(plan.generations):>7} {plan.to_render:>7} {plan.to_call:>7} "
                       f"{plan.to_copy:>7} {plan.to_parse:>7} {plan.reused:>7} {len(plan.blocked):>8}")
        blocked = self.blocked
        for g in blocked[:10]:
            out.append(f"  blocked {g.stage}/{g.gen_id}: {g.reason}")
        if len(blocked) > 10:
            out.append(f"  ... and {len(blocked) - 10} more blocked")
        if not self.has_work:
            out.append("nothing to run: every requested generation is reused" + (" or blocked" if blocked else ""))
        out += self.notes
        return "\n".join(out)


class _Pending:
    """The parent's parsed text will come from a model call: unknown before the run."""


_PENDING = _Pending()


@dataclass(frozen=True)
class _Missing:
    """The parent will have no parsed text; ``reason`` says why."""

    reason: str


_ParentText = str | _Pending | _Missing


def _metadata(row: MembershipRow, cohort_id: str) -> GenerationMetadata:
    """A generation's metadata as the cohort build seeds it (so a dry run needs no seeded files)."""
    return GenerationMetadata(
        stage=row.stage, gen_id=row.gen_id, template_id=row.template_id,
        parent_stage=parent_stage(row.stage) if row.parent_gen_id else None,
        parent_gen_id=row.parent_gen_id, mode=row.mode, combo_id=row.combo_id or None,
        cohort_id=cohort_id, llm_model_id=row.llm_model_id, replicate=row.replicate,
        parent_gen_ids=row.parents(), round=row.round,
    )


class _Planner:
    def __init__(self, ctx: StageContext, cohort_id: str, force: Iterable[Stage],
                 served_by: Callable[[str], str | None] | None) -> None:
        self.ctx = ctx
        self.layer: GensDataLayer = ctx.layer
        self.cohort_id = cohort_id
        self.force = set(force)
        self.served_by = served_by
        # Parsed text each planned generation will hold after the run (or why it will not).
        self.outcome: dict[str, _ParentText] = {}

    def settings(self, stage: Stage) -> StageSettings:
        return StageSettings(force=stage in self.force)

    def parent_text(self, row: MembershipRow) -> _ParentText | tuple[str, ...] | None:
        """The parent's parsed text after the run; for a comparison, both essays' texts (or the
        first parent that will be pending or missing)."""
        parents = row.parents()
        if not parents:
            return None
        texts = [self._one_parent_text(row.stage, parent) for parent in parents]
        for text in texts:
            if not isinstance(text, str):
                return text
        return texts[0] if len(texts) == 1 else tuple(texts)  # type: ignore[return-value]

    def _one_parent_text(self, stage: Stage, parent_gen_id: str) -> _ParentText:
        planned = self.outcome.get(parent_gen_id)
        if planned is not None:
            return planned
        # Parent not planned (its stage not requested, or not in this cohort): what is on disk.
        above = parent_stage(stage)
        assert above is not None
        try:
            return self.layer.read_parsed(above, parent_gen_id)
        except FileNotFoundError:
            return _Missing(f"parent {above}/{parent_gen_id} has no parsed output; run the {above} stage")

    def plan(self, row: MembershipRow) -> GenerationPlan:
        stage, gen_id = row.stage, row.gen_id
        settings = self.settings(stage)
        metadata = _metadata(row, self.cohort_id)
        model = row.llm_model_id if row.mode == "llm" else None
        regenerate: RawAction = "copy" if row.mode == "copy" else "call"
        parent = self.parent_text(row)

        if isinstance(parent, _Pending):
            self.outcome[gen_id] = _PENDING
            return GenerationPlan(stage, gen_id, "render", regenerate, "parse", "parent regenerates", model)
        prompt_text: str | None = None
        reason = ""
        if isinstance(parent, _Missing):
            reason = parent.reason
        elif regenerate == "call" and not self.layer.prompt_exists(stage, gen_id):
            # Nothing on disk to compare with: the prompt is written whatever it renders to (a
            # dry run of a new cohort also plans combinations its build has not registered yet).
            self.outcome[gen_id] = _PENDING
            return GenerationPlan(stage, gen_id, "render", regenerate, "parse", "new", model)
        else:
            try:
                prompt_text = build_prompt(self.ctx, metadata, parent_text=parent)
            except (DaydreamError, ValueError, FileNotFoundError) as exc:
                reason = f"prompt does not render: {exc}"
        if prompt_text is None:
            return self._blocked_prompt(row, settings, reason, regenerate, model)

        if not prompt_reusable(self.ctx, stage, gen_id, prompt_text, settings):
            why = "forced" if settings.force else ("new" if not self.layer.prompt_exists(stage, gen_id)
                                                   else "prompt changed")
            self.outcome[gen_id] = self._after_regenerating(row, regenerate, prompt_text)
            return GenerationPlan(stage, gen_id, "render", regenerate, "parse", why, model)
        if not raw_reusable(self.ctx, stage, gen_id, settings, self.served_by):
            why = "raw output rejected" if self._raw_failed(stage, gen_id) else "no raw output"
            self.outcome[gen_id] = self._after_regenerating(row, regenerate, prompt_text)
            return GenerationPlan(stage, gen_id, "reuse", regenerate, "parse", why, model)
        if not parsed_reusable(self.ctx, stage, gen_id, settings):
            self.outcome[gen_id] = self._parse_kept_raw(row)
            return GenerationPlan(stage, gen_id, "reuse", "reuse", "parse", "not parsed (or parse failed)", model)
        self.outcome[gen_id] = self._on_disk_parsed(row)
        return GenerationPlan(stage, gen_id, "reuse", "reuse", "reuse", "", model)

    def _blocked_prompt(self, row: MembershipRow, settings: StageSettings, reason: str,
                        regenerate: RawAction, model: str | None) -> GenerationPlan:
        """The prompt phase fails and records the failure (``GensDataLayer.record_blocked``):
        without a usable raw output it removes the stale prompt, so the raw phase has nothing to
        send; a usable raw output (and its prompt) is kept and reused, or sent again when the raw
        rule refuses it (forced, synthetic text for a model with a real route now)."""
        stage, gen_id = row.stage, row.gen_id
        if raw_reusable(self.ctx, stage, gen_id, settings, self.served_by):
            if parsed_reusable(self.ctx, stage, gen_id, settings):
                self.outcome[gen_id] = self._on_disk_parsed(row)
                return GenerationPlan(stage, gen_id, "blocked", "reuse", "reuse", reason, model)
            self.outcome[gen_id] = self._parse_kept_raw(row)
            return GenerationPlan(stage, gen_id, "blocked", "reuse", "parse", reason, model)
        if self.layer.raw_exists(stage, gen_id) and self.layer.prompt_exists(stage, gen_id):
            stored = self.layer.read_prompt(stage, gen_id)
            self.outcome[gen_id] = self._after_regenerating(row, regenerate, stored)
            return GenerationPlan(stage, gen_id, "blocked", regenerate, "parse",
                                  f"{reason} (the raw phase sends the stored prompt)", model)
        if settings.force and self.layer.raw_exists(stage, gen_id):
            # Forced, but nothing can be sent (no prompt renders, none is stored): the raw phase
            # fails, and the parsed phase parses the raw output still on disk again.
            self.outcome[gen_id] = self._parse_kept_raw(row)
            return GenerationPlan(stage, gen_id, "blocked", "blocked", "parse",
                                  f"{reason} (the stored raw output is parsed again)", model)
        self.outcome[gen_id] = _Missing(f"parent {stage}/{gen_id} is blocked: {reason}")
        return GenerationPlan(stage, gen_id, "blocked", "blocked", "blocked", reason, model)

    def _raw_failed(self, stage: Stage, gen_id: str) -> bool:
        try:
            return bool(self.layer.read_raw_metadata(stage, gen_id).get("failed"))
        except (FileNotFoundError, ValueError):
            return False

    def _after_regenerating(self, row: MembershipRow, regenerate: RawAction, prompt_text: str) -> _ParentText:
        if regenerate == "call":
            return _PENDING
        return self._parse(row, prompt_text)  # copy mode: raw is the prompt

    def _parse_kept_raw(self, row: MembershipRow) -> _ParentText:
        return self._parse(row, self.layer.read_raw(row.stage, row.gen_id))

    def _parse(self, row: MembershipRow, raw_text: str) -> _ParentText:
        """The parsed text a parse of ``raw_text`` gives, as the parsed phase computes it."""
        try:
            _name, parser = template_parser(self.ctx, row.stage, row.template_id)
            return parser(raw_text).text
        except (ParseError, DaydreamError, ValueError) as exc:
            return _Missing(f"parent {row.stage}/{row.gen_id} fails to parse: {exc}")

    def _on_disk_parsed(self, row: MembershipRow) -> _ParentText:
        try:
            return self.layer.read_parsed(row.stage, row.gen_id)
        except FileNotFoundError:
            return _Missing(f"parent {row.stage}/{row.gen_id} has no parsed output")


def plan_cohort(
    data_root: str,
    cohort_id: str,
    membership: Membership,
    *,
    stages: Sequence[Stage] = STAGES,
    force: Iterable[Stage] = (),
    ctx: StageContext | None = None,
    served_by: Callable[[str], str | None] | None = None,
) -> CohortPlan:
    """Plan ``stages`` (in pipeline order) of a cohort whose membership is given.

    ``force`` lists the stages to regenerate; ``served_by`` maps a model id to the provider
    that would answer it now (the model client's routes), for the raw reuse rule. Reads the gens
    store and catalogs, writes nothing.
    """
    planner = _Planner(ctx or StageContext.for_root(data_root), cohort_id, force, served_by)
    plans: dict[Stage, StagePlan] = {}
    for stage in STAGES:
        if stage not in stages:
            continue
        rows = membership.rows(stage)
        plans[stage] = StagePlan(stage, tuple(planner.plan(row) for row in rows))
    return CohortPlan(cohort_id, plans)


def plan_summary(plan: CohortPlan) -> Mapping[Stage, dict[str, int]]:
    """Counts per stage (for JSON output and tests)."""
    return {
        stage: {"total": len(p.generations), "render": p.to_render, "call": p.to_call, "copy": p.to_copy,
                "parse": p.to_parse, "reused": p.reused, "blocked": len(p.blocked)}
        for stage, p in plan.stages.items()
    }
