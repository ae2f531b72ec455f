"""Top-N essays of a cohort, copied with a header to ``results/<cohort_id>/top_essays/``."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ..data_layer import GensDataLayer, Paths, _storage
from .export import write_csv

__all__ = ["INDEX_FILENAME", "TOP_DIRNAME", "TopEssay", "TopEssays", "export_top_essays", "rank_top_essays"]

TOP_DIRNAME = "top_essays"
INDEX_FILENAME = "index.csv"
# Files this module owns inside top_essays/: stale ones from an earlier, longer ranking go.
_OWNED_FILE = re.compile(r"^\d+_[A-Za-z0-9_-]+\.md$")


@dataclass(frozen=True)
class TopEssay:
    """One ranked essay and where its copy and its generations live."""

    rank: int
    essay_gen_id: str
    mean: float
    n: int
    min: float | None
    max: float | None
    spread: float | None
    draft_gen_id: str | None
    combo_id: str | None
    concept_ids: str | None
    draft_template: str | None
    draft_llm: str | None
    essay_template: str | None
    essay_llm: str | None
    file: str
    """The copy, relative to the data root (``results/<cohort>/top_essays/01_<id>.md``)."""
    essay_dir: str
    """The essay's generation directory, relative to the data root."""
    draft_dir: str | None
    """The parent draft's generation directory, relative to the data root."""


@dataclass(frozen=True)
class TopEssays:
    """The exported ranking."""

    cohort_id: str
    top_n: int
    essays: tuple[TopEssay, ...]
    index_file: str
    """``index.csv``, relative to the data root."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for the JSON IO manager and Dagster metadata)."""
        return {
            "cohort_id": self.cohort_id,
            "top_n": self.top_n,
            "index_file": self.index_file,
            "essays": [asdict(e) for e in self.essays],
        }


def rank_top_essays(aggregates: pl.DataFrame, top_n: int) -> pl.DataFrame:
    """The ``top_n`` best-ranked rows of :func:`~.aggregates.essay_aggregates` (scored essays only)."""
    if top_n < 0:
        raise ValueError(f"top_n must be >= 0, got {top_n}")
    return aggregates.filter(pl.col("rank").is_not_null()).sort("rank").head(top_n)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _header(row: dict[str, Any], rel_to_root: str, cohort_id: str) -> str:
    essay_dir = f"{rel_to_root}gens/essay/{row['essay_gen_id']}/"
    lines = [
        f"# Rank {row['rank']}: essay {row['essay_gen_id']}",
        "",
        f"- cohort: `{cohort_id}`",
        f"- mean score: {_fmt(row['mean'])} over {row['n']} evaluation(s) "
        f"(min {_fmt(row['min'])}, max {_fmt(row['max'])}, spread between evaluators {_fmt(row['spread'])})",
        f"- essay: template `{row['essay_template']}`, model `{row['essay_llm'] or 'copy'}` ([generation]({essay_dir}))",
    ]
    if row.get("draft_gen_id"):
        draft_dir = f"{rel_to_root}gens/draft/{row['draft_gen_id']}/"
        lines.append(
            f"- draft: {row['draft_gen_id']}, template `{row['draft_template']}`, model `{row['draft_llm']}` "
            f"([generation]({draft_dir}))"
        )
    lines.append(f"- combination: `{row['combo_id']}` (concepts: {row['concept_ids'] or 'unknown'})")
    return "\n".join(lines) + "\n\n---\n\n"


def export_top_essays(
    data_root: str | os.PathLike[str] | Path, cohort_id: str, aggregates: pl.DataFrame, top_n: int = 5
) -> TopEssays:
    """Copy the ``top_n`` best essays (by :func:`~.aggregates.essay_aggregates` rank) to
    ``results/<cohort_id>/top_essays/<rank>_<essay_gen_id>.md`` (rank zero-padded, a header
    with score and lineage, then the essay's parsed text) and write the ranked ``index.csv``
    beside them. Copies left from an earlier export are removed first. Returns the ranking."""
    paths = Paths.from_str(data_root)
    layer = GensDataLayer(paths.data_root)
    top_dir = paths.cohort_results_dir(cohort_id) / TOP_DIRNAME
    top_dir.mkdir(parents=True, exist_ok=True)
    for stale in list(top_dir.iterdir()):
        if _OWNED_FILE.match(stale.name):
            _storage.remove_file(stale)
    ranked = rank_top_essays(aggregates, top_n)
    width = max(2, len(str(max(top_n, 1))))
    prefix = f"results/{cohort_id}/{TOP_DIRNAME}"
    essays: list[TopEssay] = []
    for row in ranked.iter_rows(named=True):
        name = f"{row['rank']:0{width}d}_{row['essay_gen_id']}.md"
        try:
            text = layer.read_parsed("essay", row["essay_gen_id"])
        except FileNotFoundError:
            text = "*(the essay's parsed.txt is missing from the gens store)*\n"
        # The copy sits three levels below the data root (results/<cohort>/top_essays/).
        _storage.atomic_write_text(top_dir / name, _header(row, "../../../", cohort_id) + text)
        essays.append(TopEssay(
            rank=row["rank"],
            essay_gen_id=row["essay_gen_id"],
            mean=row["mean"],
            n=row["n"],
            min=row["min"],
            max=row["max"],
            spread=row["spread"],
            draft_gen_id=row["draft_gen_id"],
            combo_id=row["combo_id"],
            concept_ids=row["concept_ids"],
            draft_template=row["draft_template"],
            draft_llm=row["draft_llm"],
            essay_template=row["essay_template"],
            essay_llm=row["essay_llm"],
            file=f"{prefix}/{name}",
            essay_dir=f"gens/essay/{row['essay_gen_id']}",
            draft_dir=f"gens/draft/{row['draft_gen_id']}" if row["draft_gen_id"] else None,
        ))
    index = pl.DataFrame([asdict(e) for e in essays], schema=_INDEX_SCHEMA)
    write_csv(index, top_dir / INDEX_FILENAME)
    return TopEssays(cohort_id=cohort_id, top_n=top_n, essays=tuple(essays), index_file=f"{prefix}/{INDEX_FILENAME}")


_INDEX_SCHEMA: dict[str, pl.DataType] = {
    "rank": pl.Int64(),
    "essay_gen_id": pl.String(),
    "mean": pl.Float64(),
    "n": pl.Int64(),
    "min": pl.Float64(),
    "max": pl.Float64(),
    "spread": pl.Float64(),
    "draft_gen_id": pl.String(),
    "combo_id": pl.String(),
    "concept_ids": pl.String(),
    "draft_template": pl.String(),
    "draft_llm": pl.String(),
    "essay_template": pl.String(),
    "essay_llm": pl.String(),
    "file": pl.String(),
    "essay_dir": pl.String(),
    "draft_dir": pl.String(),
}
