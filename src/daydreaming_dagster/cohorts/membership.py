"""From design rows to generations: drafts, essays and evaluations with deterministic ids.

Each design row names one evaluation of one essay of one draft::

    draft      = (combo_id, draft_template, draft_llm, draft_template_replicate)
    essay      = (draft, essay_template, essay_llm, essay_template_replicate)
    evaluation = (essay, evaluation_template, evaluation_llm, evaluation_template_replicate)

Ids come from :mod:`daydreaming_dagster.ids`; a generation shared by several rows (a draft
with many essays) appears once, at its first row, so every stage's list is in *membership
order* (the design's row order). An essay template whose ``generator`` is ``copy`` copies its
draft: no model takes part, so its ``llm_model_id`` is ``None`` and the ``essay_llm`` axis
collapses (one essay per draft x template x replicate). Replicate axes default to 1; a spec
without essay (or evaluation) axes yields drafts only (or drafts and essays).

Validation against the catalogs collects every unknown template, model and combo into one
:class:`~daydreaming_dagster.errors.MembershipError`. No Dagster here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..catalogs import Catalogs
from ..errors import MembershipError
from ..ids import draft_gen_id, essay_gen_id, evaluation_gen_id
from ..types import STAGES, Stage

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "MEMBERSHIP_COLUMNS",
    "METADATA_KEYS",
    "Membership",
    "MembershipRow",
    "build_membership",
    "membership_problems",
    "stale_partition_keys",
]

MEMBERSHIP_COLUMNS: tuple[str, ...] = (
    "stage",
    "gen_id",
    "parent_gen_id",
    "template_id",
    "llm_model_id",
    "combo_id",
    "replicate",
    "mode",
)
"""Columns of a membership row (``membership.csv`` on disk keeps only ``stage,gen_id``)."""

METADATA_KEYS: tuple[str, ...] = (
    "stage",
    "gen_id",
    "template_id",
    "mode",
    "parent_gen_id",
    "combo_id",
    "llm_model_id",
    "cohort_id",
    "replicate",
)
"""Keys of a seeded ``metadata.json``."""

# Design columns per stage: (template, model, replicate).
_AXES: dict[Stage, tuple[str, str, str]] = {
    "draft": ("draft_template", "draft_llm", "draft_template_replicate"),
    "essay": ("essay_template", "essay_llm", "essay_template_replicate"),
    "evaluation": ("evaluation_template", "evaluation_llm", "evaluation_template_replicate"),
}


@dataclass(frozen=True, slots=True)
class MembershipRow:
    """One generation of a cohort."""

    stage: Stage
    gen_id: str
    parent_gen_id: str | None
    """Draft of an essay, essay of an evaluation; ``None`` for drafts."""
    template_id: str
    llm_model_id: str | None
    """Model catalog id; ``None`` in copy mode."""
    combo_id: str
    """The draft's combination (inherited by its essays and evaluations)."""
    replicate: int
    mode: str
    """``llm`` or ``copy``."""
    parent_gen_ids: tuple[str, ...] = ()
    """Both parent essays of a comparison, in the order shown to the judge (A, B); empty for
    the single-parent stages (their parent is ``parent_gen_id``)."""
    round: int | None = None
    """The tournament round that paired a comparison's essays (``None`` for other stages)."""

    def parents(self) -> tuple[str, ...]:
        """Every parent gen id (none for drafts, two for comparisons)."""
        if self.parent_gen_ids:
            return self.parent_gen_ids
        return (self.parent_gen_id,) if self.parent_gen_id else ()

    def metadata(self, cohort_id: str) -> dict[str, Any]:
        """The ``metadata.json`` a cohort build seeds for this generation."""
        meta: dict[str, Any] = {
            "stage": self.stage,
            "gen_id": self.gen_id,
            "template_id": self.template_id,
            "mode": self.mode,
            "parent_gen_id": self.parent_gen_id,
            "combo_id": self.combo_id,
            "llm_model_id": self.llm_model_id,
            "cohort_id": cohort_id,
            "replicate": self.replicate,
        }
        if self.parent_gen_ids:
            meta["parent_gen_ids"] = list(self.parent_gen_ids)
        if self.round is not None:
            meta["round"] = self.round
        return meta

    def as_dict(self) -> dict[str, Any]:
        return {column: getattr(self, column) for column in MEMBERSHIP_COLUMNS}


@dataclass(frozen=True)
class Membership:
    """A cohort's generations per stage, each list in membership order."""

    drafts: tuple[MembershipRow, ...]
    essays: tuple[MembershipRow, ...] = ()
    evaluations: tuple[MembershipRow, ...] = ()
    design_rows: int = 0
    """Number of design rows the membership came from."""
    comparisons: tuple[MembershipRow, ...] = ()
    """Tournament comparisons decided so far (round by round; see :mod:`.tournament`)."""

    def rows(self, stage: Stage) -> tuple[MembershipRow, ...]:
        return {"draft": self.drafts, "essay": self.essays, "evaluation": self.evaluations,
                "comparison": self.comparisons}[stage]

    def all_rows(self) -> Iterator[MembershipRow]:
        """Drafts, essays, evaluations, then comparisons (the order of ``membership.csv``)."""
        for stage in STAGES:
            yield from self.rows(stage)

    def gen_ids(self, stage: Stage) -> list[str]:
        return [row.gen_id for row in self.rows(stage)]

    def parents(self) -> dict[str, str | None]:
        """Gen id -> parent gen id (``None`` for drafts; essay A for comparisons), every stage."""
        return {row.gen_id: row.parent_gen_id for row in self.all_rows()}

    def all_parents(self) -> dict[str, tuple[str, ...]]:
        """Gen id -> every parent gen id (both essays of a comparison), every stage."""
        return {row.gen_id: row.parents() for row in self.all_rows()}

    def with_comparisons(self, comparisons: Sequence[MembershipRow]) -> Membership:
        """This membership with ``comparisons`` as its comparison stage."""
        return replace(self, comparisons=tuple(comparisons))

    def counts(self) -> dict[str, int]:
        return {stage: len(self.rows(stage)) for stage in STAGES}

    def model_calls(self) -> dict[str, int]:
        """Generations per stage that call a model (copy-mode essays do not)."""
        return {stage: sum(1 for r in self.rows(stage) if r.mode == "llm") for stage in STAGES}

    def __len__(self) -> int:
        return len(self.drafts) + len(self.essays) + len(self.evaluations) + len(self.comparisons)

    def combo_ids(self) -> list[str]:
        """Distinct combos of the drafts, in membership order."""
        return list(dict.fromkeys(row.combo_id for row in self.drafts))

    def to_frame(self) -> pl.DataFrame:
        """All rows as a polars DataFrame with :data:`MEMBERSHIP_COLUMNS`."""
        import polars as pl

        schema = {
            "stage": pl.String,
            "gen_id": pl.String,
            "parent_gen_id": pl.String,
            "template_id": pl.String,
            "llm_model_id": pl.String,
            "combo_id": pl.String,
            "replicate": pl.Int64,
            "mode": pl.String,
        }
        rows = list(self.all_rows())
        data = {column: [getattr(r, column) for r in rows] for column in MEMBERSHIP_COLUMNS}
        return pl.DataFrame(data, schema=schema)


def _design_fields(design: Any) -> tuple[str, ...]:
    fields = getattr(design, "fields", None)
    if fields is not None:
        return tuple(fields)
    rows = list(design)
    return tuple(rows[0]) if rows else ()


def _design_rows(design: Any) -> Sequence[Mapping[str, Any]]:
    rows = getattr(design, "rows", design)
    return rows if isinstance(rows, Sequence) else list(rows)


def _copy_templates(catalogs: Catalogs | None) -> set[str]:
    if catalogs is None:
        return set()
    return {t.template_id for t in catalogs.templates.get("essay", {}).values() if t.generator == "copy"}


def build_membership(
    design: Iterable[Mapping[str, Any]],
    catalogs: Catalogs | None = None,
    *,
    extra_combo_ids: Collection[str] = (),
    validate: bool = True,
    source: str = "cohort",
) -> Membership:
    """Turn design rows (a :class:`~.spec.DesignRows` or dicts) into a :class:`Membership`.

    ``catalogs`` decides copy mode (essay templates with ``generator=copy``) and, when
    ``validate``, every template, model and combo is checked against it (``extra_combo_ids``
    are combos the build is about to register). Without catalogs every template is ``llm``
    and nothing is validated. Raises :class:`MembershipError` for missing axes or, listing all
    of them at once, unknown values; ``source`` names the spec in messages.
    """
    fields = _design_fields(design)
    rows = _design_rows(design)
    stages = _stages_present(fields, source)
    copy = _copy_templates(catalogs)

    drafts: dict[tuple[Any, ...], MembershipRow] = {}
    essays: dict[tuple[Any, ...], MembershipRow] = {}
    evaluations: dict[tuple[Any, ...], MembershipRow] = {}
    d_tpl, d_llm, d_rep = _AXES["draft"]
    e_tpl, e_llm, e_rep = _AXES["essay"]
    v_tpl, v_llm, v_rep = _AXES["evaluation"]
    has_essay = "essay" in stages
    has_eval = "evaluation" in stages
    essay_llm_present = e_llm in fields

    try:
        for row in rows:
            combo = row["combo_id"]
            d_key = (combo, row[d_tpl], row[d_llm], row.get(d_rep, 1))
            draft = drafts.get(d_key)
            if draft is None:
                replicate = int(d_key[3])
                draft = MembershipRow(
                    stage="draft",
                    gen_id=draft_gen_id(str(combo), str(d_key[1]), str(d_key[2]), replicate),
                    parent_gen_id=None,
                    template_id=str(d_key[1]),
                    llm_model_id=str(d_key[2]),
                    combo_id=str(combo),
                    replicate=replicate,
                    mode="llm",
                )
                drafts[d_key] = draft
            if not has_essay:
                continue
            template = row[e_tpl]
            is_copy = template in copy
            if is_copy:
                model = None
            elif essay_llm_present:
                model = row[e_llm]
            else:
                raise MembershipError(
                    f"{source}: essay template {template!r} calls a model but the spec has no essay_llm axis; "
                    "add essay_llm or use a copy-mode essay template"
                )
            e_key = (draft.gen_id, template, model, row.get(e_rep, 1))
            essay = essays.get(e_key)
            if essay is None:
                replicate = int(e_key[3])
                essay = MembershipRow(
                    stage="essay",
                    gen_id=essay_gen_id(draft.gen_id, str(template), None if model is None else str(model), replicate),
                    parent_gen_id=draft.gen_id,
                    template_id=str(template),
                    llm_model_id=None if model is None else str(model),
                    combo_id=draft.combo_id,
                    replicate=replicate,
                    mode="copy" if is_copy else "llm",
                )
                essays[e_key] = essay
            if not has_eval:
                continue
            v_key = (essay.gen_id, row[v_tpl], row[v_llm], row.get(v_rep, 1))
            if v_key not in evaluations:
                replicate = int(v_key[3])
                evaluations[v_key] = MembershipRow(
                    stage="evaluation",
                    gen_id=evaluation_gen_id(essay.gen_id, str(v_key[1]), str(v_key[2]), replicate),
                    parent_gen_id=essay.gen_id,
                    template_id=str(v_key[1]),
                    llm_model_id=str(v_key[2]),
                    combo_id=draft.combo_id,
                    replicate=replicate,
                    mode="llm",
                )
    except ValueError as exc:
        if isinstance(exc, MembershipError):
            raise
        raise MembershipError(f"{source}: {exc}") from None

    membership = Membership(
        drafts=tuple(drafts.values()),
        essays=tuple(essays.values()),
        evaluations=tuple(evaluations.values()),
        design_rows=len(rows),
    )
    if validate and catalogs is not None:
        problems = membership_problems(membership, catalogs, extra_combo_ids=extra_combo_ids)
        if problems:
            raise MembershipError(format_problems(source, problems))
    return membership


def _stages_present(fields: Sequence[str], source: str) -> list[Stage]:
    missing = [c for c in ("combo_id", "draft_template", "draft_llm") if c not in fields]
    if missing:
        raise MembershipError(
            f"{source}: the design has no {', '.join(missing)} column(s); a cohort needs combo_id, "
            "draft_template and draft_llm axes (columns: " + (", ".join(fields) or "none") + ")"
        )
    stages: list[Stage] = ["draft"]
    if "essay_template" in fields:
        stages.append("essay")
    if "evaluation_template" in fields:
        if "essay" not in stages:
            raise MembershipError(f"{source}: evaluation axes need an essay_template axis (evaluations grade essays)")
        if "evaluation_llm" not in fields:
            raise MembershipError(f"{source}: the design has evaluation_template but no evaluation_llm axis")
        stages.append("evaluation")
    elif "evaluation_llm" in fields:
        raise MembershipError(f"{source}: the design has evaluation_llm but no evaluation_template axis")
    if "essay_llm" in fields and "essay" not in stages:
        raise MembershipError(f"{source}: the design has essay_llm but no essay_template axis")
    return stages


def membership_problems(
    membership: Membership, catalogs: Catalogs, *, extra_combo_ids: Collection[str] = ()
) -> list[str]:
    """Every value the catalogs do not know, one line per kind (empty when all is well)."""
    problems: list[str] = []
    for stage in STAGES:
        known = catalogs.templates.get(stage, {})
        used = list(dict.fromkeys(r.template_id for r in membership.rows(stage)))
        unknown = [t for t in used if t not in known]
        if unknown:
            problems.append(
                f"unknown {stage} template(s): {', '.join(unknown)} (not in {stage}_templates.csv; "
                f"known: {', '.join(known) or 'none'})"
            )
        inactive = [t for t in used if t in known and not known[t].active]
        if inactive:
            problems.append(
                f"inactive {stage} template(s): {', '.join(inactive)} (active=false in {stage}_templates.csv; "
                "set it to true or drop them from the spec)"
            )
    models = list(
        dict.fromkeys(r.llm_model_id for r in membership.all_rows() if r.llm_model_id is not None)
    )
    unknown_models = [m for m in models if m not in catalogs.models]
    if unknown_models:
        problems.append(
            f"unknown model(s): {', '.join(unknown_models)} (not in llm_models.csv; "
            f"known: {', '.join(catalogs.models) or 'none'})"
        )
    known_combos = set(catalogs.combo_ids) | set(extra_combo_ids)
    unknown_combos = [c for c in membership.combo_ids() if c not in known_combos]
    if unknown_combos:
        problems.append(
            f"unknown combo(s): {', '.join(unknown_combos)} (not in combo_mappings.csv; "
            "register them or build them from concepts with the spec's combos section)"
        )
    return problems


def format_problems(source: str, problems: Sequence[str]) -> str:
    """One error message listing every problem of a cohort."""
    return f"{source}: the cohort does not match the catalogs:\n  - " + "\n  - ".join(problems)


def stale_partition_keys(
    present: Mapping[str, Iterable[str]], referenced: Mapping[str, Iterable[str]]
) -> dict[str, list[str]]:
    """Keys in ``present`` (per partition set) that ``referenced`` does not list, in the
    order of ``present``; used to prune dynamic partitions no cohort uses any more."""
    stale: dict[str, list[str]] = {}
    for name, keys in present.items():
        keep = set(referenced.get(name, ()))
        stale[name] = [k for k in keys if k not in keep]
    return stale
