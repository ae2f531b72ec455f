"""What the compare page shows about one pair of essays: the judges' verdicts and the people's
preferences (issue 20), both translated to the page's sides (no web framework here).

A cohort's comparisons are its ``comparison`` members (``membership.csv``); each one's
``metadata.json`` names its two essays in the order the judge saw them (``parent_gen_ids``:
A, B). The compare page shows essay X left ("A" on the page) and Y right ("B"): a comparison
with A = X, B = Y is shown as judged; one with A = Y, B = X has its verdict swapped (the judge's
"A" is the page's "B") and is flagged *shown to the judge in the other order*. The same
translation applies to recorded human preferences.

The pair index (essay pair → comparison ids) is built once per cohort view from the metadata
(seeded when the cohort is built, so it only changes with the membership, which rebuilds the
view); a pair's verdicts, reasons and statuses are read from disk on each request, so a verdict
written after the view was built shows at once. Judge text (``raw.txt``) is model output:
templates escape it, nothing here turns it into HTML.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data_layer import _storage
from ..data_layer.paths import (
    METADATA_FILENAME,
    PARSED_FILENAME,
    PARSED_METADATA_FILENAME,
    RAW_FILENAME,
    RAW_METADATA_FILENAME,
    Paths,
)
from ..ids import is_valid_gen_id
from ..results.cohort import GenerationRecord
from ..results.human_comparisons import PREFERENCES, HumanComparison, latest_comparisons

__all__ = [
    "COMPARISON_STAGE",
    "HumanPreferenceView",
    "JudgeVerdict",
    "PairVerdicts",
    "comparison_parents",
    "pair_index",
    "pair_verdicts",
    "swap_verdict",
]

COMPARISON_STAGE = "comparison"
_SWAP = {"A": "B", "B": "A", "tie": "tie"}


def swap_verdict(verdict: str | None) -> str | None:
    """A verdict about (A, B) as a verdict about (B, A): ``A`` ↔ ``B``, ``tie`` stays."""
    return None if verdict is None else _SWAP.get(verdict)


def _canonical(value: object) -> str | None:
    text = value.strip() if isinstance(value, str) else ""
    return next((p for p in PREFERENCES if text.lower() == p.lower()), None)


def _comparison_dir(paths: Paths, gen_id: str) -> Path:
    return paths.generation_dir(COMPARISON_STAGE, gen_id)


def _json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return _storage.read_json_object(path), None
    except FileNotFoundError:
        return None, None
    except ValueError as exc:
        return None, str(exc)


def _text(path: Path) -> str | None:
    try:
        return _storage.read_text(path)
    except (FileNotFoundError, ValueError):
        return None


def _record(paths: Paths, gen_id: str) -> GenerationRecord:
    """The comparison's files read now (status and error come from the results layer's rules)."""
    folder = _comparison_dir(paths, gen_id)
    metadata, e1 = _json(folder / METADATA_FILENAME)
    raw, e2 = _json(folder / RAW_METADATA_FILENAME)
    parsed, e3 = _json(folder / PARSED_METADATA_FILENAME)
    errors = "; ".join(e for e in (e1, e2, e3) if e) or None
    return GenerationRecord(COMPARISON_STAGE, gen_id, metadata, raw, parsed, read_error=errors)  # type: ignore[arg-type]


def comparison_parents(metadata: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """``(essay A, essay B)`` from a comparison's metadata (``parent_gen_ids``), or ``None``."""
    parents = (metadata or {}).get("parent_gen_ids")
    if not isinstance(parents, list | tuple) or len(parents) != 2:
        return None
    a, b = parents
    if not (is_valid_gen_id(a) and is_valid_gen_id(b)) or a == b:
        return None
    return str(a), str(b)


def pair_index(
    data_root: str | Path, comparison_ids: list[str], known: Mapping[tuple[str, str], GenerationRecord]
) -> dict[frozenset[str], list[str]]:
    """``{essay pair: comparison ids}`` over the cohort's comparison members (either order).

    ``known`` holds records the cohort load already read (keyed ``(stage, gen_id)``); others
    have their ``metadata.json`` read now. Comparisons without two valid parents are left out.
    """
    paths = Paths.from_str(data_root)
    index: dict[frozenset[str], list[str]] = {}
    for gen_id in comparison_ids:
        if not is_valid_gen_id(gen_id):
            continue
        record = known.get((COMPARISON_STAGE, gen_id))
        metadata = record.metadata if record is not None else _json(_comparison_dir(paths, gen_id) / METADATA_FILENAME)[0]
        parents = comparison_parents(metadata)
        if parents is not None:
            index.setdefault(frozenset(parents), []).append(gen_id)
    return index


@dataclass(frozen=True)
class JudgeVerdict:
    """One judge's comparison of the page's pair."""

    comparison_gen_id: str
    judge: str | None
    """The judge model (``llm_model_id``)."""
    template_id: str | None
    round: int | None
    """The Swiss round it was made in (1-based)."""
    replicate: int | None
    swapped: bool
    """True when the judge saw the page's right essay first (its verdict is translated)."""
    verdict: str | None
    """The judge's own verdict about the order it saw (``A``, ``B``, ``tie``), when parsed."""
    page_verdict: str | None
    """The verdict about the page's sides (``A`` = left, ``B`` = right, ``tie``)."""
    status: str
    """``ok``, ``parse_error``, ``raw_failed`` or ``missing`` (not judged yet)."""
    error: str | None
    reasons: str | None
    """The judge's full answer (``raw.txt``): untrusted model text, shown escaped."""
    verdict_line: str | None
    """The line the parser read the verdict from, when it recorded one."""


@dataclass(frozen=True)
class HumanPreferenceView:
    """One person's current preference for the page's pair."""

    record: HumanComparison
    swapped: bool
    """True when it was given with the essays shown in the other order."""
    page_preference: str
    """The preference about the page's sides."""


@dataclass(frozen=True)
class PairVerdicts:
    """Everything the compare page shows about its pair's judgements."""

    left: str
    right: str
    judges: list[JudgeVerdict]
    humans: list[HumanPreferenceView]

    def tally(self, which: str) -> dict[str, int]:
        """Counts of page verdicts (``A``, ``B``, ``tie``) among ``judges`` or ``humans``."""
        values = ([j.page_verdict for j in self.judges] if which == "judges"
                  else [h.page_preference for h in self.humans])
        return {p: sum(1 for v in values if v == p) for p in PREFERENCES}


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _judge_verdict(paths: Paths, gen_id: str, left: str) -> JudgeVerdict | None:
    record = _record(paths, gen_id)
    parents = comparison_parents(record.metadata)
    if parents is None:
        return None
    status = record.status
    parsed_meta = record.parsed_metadata or {}
    folder = _comparison_dir(paths, gen_id)
    verdict = None
    error = record.error
    if status == "ok":
        verdict = _canonical(parsed_meta.get("verdict")) or _canonical(_text(folder / PARSED_FILENAME))
        if verdict is None:
            status, error = "parse_error", "parsed output is not A, B or tie"
    swapped = parents[0] != left
    line = parsed_meta.get("line")
    return JudgeVerdict(
        comparison_gen_id=gen_id,
        judge=record.llm_model_id,
        template_id=record.template_id,
        round=_int((record.metadata or {}).get("round")),
        replicate=record.replicate,
        swapped=swapped,
        verdict=verdict,
        page_verdict=swap_verdict(verdict) if swapped else verdict,
        status=status,
        error=error,
        reasons=_text(folder / RAW_FILENAME),
        verdict_line=str(line) if isinstance(line, str | int) else None,
    )


def pair_verdicts(
    data_root: str | Path,
    left: str,
    right: str,
    comparison_ids: list[str],
    human: list[HumanComparison] | tuple[HumanComparison, ...],
) -> PairVerdicts:
    """The judges' verdicts (``comparison_ids``: the pair's comparisons, from :func:`pair_index`)
    and the current human preferences (latest per rater and order shown, from ``human``) of the
    pair, translated to the page's sides (``left`` = A, ``right`` = B). Judges are ordered by
    round, judge, template and order shown."""
    paths = Paths.from_str(data_root)
    judges = [v for v in (_judge_verdict(paths, g, left) for g in comparison_ids) if v is not None]
    judges.sort(key=lambda v: (v.round or 0, v.judge or "", v.template_id or "", v.swapped, v.comparison_gen_id))
    pair = {left, right}
    humans = []
    for record in latest_comparisons(list(human)):
        if {record.essay_a, record.essay_b} != pair:
            continue
        swapped = record.essay_a != left
        humans.append(HumanPreferenceView(record, swapped, swap_verdict(record.preference) if swapped else record.preference))  # type: ignore[arg-type]
    humans.sort(key=lambda h: (h.record.created_at, h.record.rater), reverse=True)
    return PairVerdicts(left=left, right=right, judges=judges, humans=humans)
