"""The cohort spec DSL: a small language for a full-factorial design with explicit couplings.

A spec (``data/cohorts/<id>/spec/config.yaml``; ``.yml``, ``.json`` and ``.toml`` work too)
compiles into *design rows*: one row per combination, one column per axis. The cohort build
turns each row into a draft, an essay and an evaluation (see :mod:`.membership`).

Example::

    axes:
      combo_id: [combo_a, combo_b]            # inline list of levels
      draft_template: '@file:drafts.csv'      # one-column CSV with a header -> list
      draft_llm: [offline]
      essay_template: [essay-llm, essay-copy]
      essay_llm: [offline]
      evaluation_template: [eval-a, eval-b]
      evaluation_llm: [offline]
      evaluation_template_replicate: [1, 2]   # replicate axes are ordinary axes of integers
    rules:
      subsets:                                # axis -> allowed levels (applied first)
        draft_template: [creative]
      ties:                                   # name -> {axes: [...]} (or just a list)
        same_llm: {axes: [draft_llm, essay_llm]}
      pairs:                                  # name -> {left, right, allowed, balance}
        draft_essay:
          left: draft_template
          right: essay_template
          allowed: [[creative, essay-llm], [creative, essay-copy]]   # or '@file:pairs.csv'
          balance: left                       # left | right | both (optional)
      tuples:                                 # name -> {axes, items}
        evaluator:
          axes: [evaluation_template, evaluation_llm]
          items: [[eval-a, offline], [eval-b, offline]]               # or '@file:items.csv'
    combos:                                   # content combinations built from concepts
      pairs_of_six:
        concepts: [c1, c2, c3, c4, c5, c6]    # or '@file:concepts.csv'
        k: 2                                  # every 2-subset (15 combos) ...
        level: paragraph                      # ... at this description level
        # k_max: 2                            # defaults to k (part of the combo id)
        # sets: [[c1, c2], [c3, c4]]          # instead of k: explicit concept sets
    output:
      field_order: [combo_id, draft_template, essay_template, evaluation_template]

Semantics (those of the established DayDreaming tool, with its YAML shapes):

* ``axes``: axis name -> list of levels or ``'@file:path'`` (relative to the spec file). A CSV
  include needs a header; one column gives a list, several give tuples in header order (used
  by ``pairs.allowed`` and ``tuples.items``); ``.txt`` (one level per line), ``.yaml`` and
  ``.json`` lists work too. Empty rows or cells are errors. Duplicate levels are dropped
  (first occurrence wins). Levels are ids (text); axes named ``*_replicate`` hold integers >= 1.
  ``replicates: {axis: count}`` (the older shorthand) adds the axis ``<axis>_replicate: [1..count]``.
* ``rules`` apply in this order, whatever order the sections are written in:

  1. ``subsets``: axis -> levels to keep. Naming a level the axis does not have, or keeping
     nothing, is an error.
  2. ``ties``: name -> axes. The levels of the tied axes are intersected (in the first axis's
     order) and every row carries the same value in all of them. The tie's name may be one of
     the axes; later rules may refer to the tie by its name or by any tied axis.
  3. ``pairs``: name -> ``{left, right, allowed, balance}`` replaces two axes by one synthetic
     axis whose levels are the allowed pairs. A side may name a tuple (or another pair, or a
     tie); its values are then written as nested lists (``[[tpl, llm], eval]``), or flat
     (``[tpl, llm, eval]``) which is what a multi-column ``@file`` CSV gives (columns are
     matched to the sides' axes by header name when the names match, else by position).
     ``balance`` (``left``, ``right`` or ``both``) requires every level present on that side to
     appear in the same number of pairs.
  4. ``tuples``: name -> ``{axes, items}`` couples N axes: only the listed combinations occur.
     Axes that only tuples define need no declaration under ``axes``; declared axes restrict
     which values the items may use.

  A pair or tuple value that names a level a subset or tie removed is dropped silently (the
  subset is the intent); a value that is no level of the axis at all is an error. After the
  Cartesian product the synthetic axes are expanded back to their component columns and
  dropped; so are tie names that are not themselves axes.
* ``combos``: content combinations from concepts. Each entry gives ``concepts`` (list or
  ``@file:``), a description ``level``, and either ``k`` (every k-subset) or ``sets``
  (explicit concept lists); ``k_max`` defaults to the largest set size. Their deterministic
  combo ids (:func:`daydreaming_dagster.ids.combo_id_for`) are added to the ``combo_id`` axis
  (after any declared levels); the cohort build registers them in ``combo_mappings.csv``.
  Compiling never writes anything.
* ``analysis`` (optional, outside the design: ids do not change): ``target`` names a text file
  (relative to the spec; it must exist) every essay is compared with, and ``similarity`` picks
  the text-similarity method (``tfidf`` or ``wordllama``) of the analysis.
* ``adaptive`` and ``gates`` (optional, outside the design: ids do not change) decide which
  members a run calls and when: evaluations added round by round, expensive essay templates
  only for drafts that pass a screen (:mod:`.spending`, docs/adaptive.md).
* ``tournament`` (optional, outside the design) adds Swiss-system rounds of pairwise
  comparisons between the cohort's essays, decided round by round (:mod:`.tournament`).
* ``output.field_order`` puts the named columns first (the others follow in axis order);
  ``output.seed`` shuffles the rows deterministically.

Every mistake raises :class:`~daydreaming_dagster.errors.SpecError` whose message starts with
the spec file and the rule (``rules.pairs.draft_essay``), and names the offending value.
No Dagster here.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import random
import tomllib
from collections import Counter
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

import yaml

from ..combos import ComboRequest, k_combinations
from ..data_layer.paths import DESCRIPTION_LEVELS, as_root_path
from ..errors import SpecError
from .spending import AdaptiveEvaluation, EssayGate, parse_adaptive, parse_gates
from .tournament import TournamentSpec, parse_tournament

__all__ = [
    "SPEC_FILENAMES",
    "CohortSpec",
    "ComboSource",
    "CoupleRule",
    "DesignRows",
    "TieRule",
    "compile_design",
    "compile_spec",
    "find_spec_file",
    "load_spec",
    "parse_spec",
]

SPEC_FILENAMES: tuple[str, ...] = ("config.yaml", "config.yml", "config.json", "config.toml")
"""Names a cohort's spec file may have under ``cohorts/<id>/spec/`` (first found wins)."""

_TOP_LEVEL = {"adaptive", "analysis", "tournament", "axes", "gates", "rules", "output", "replicates", "combos", "description", "name", "notes"}
_RULE_SECTIONS = ("subsets", "ties", "pairs", "tuples")
SIMILARITY_METHODS = ("tfidf", "wordllama")
"""Text-similarity methods ``analysis.similarity`` accepts (see docs/analysis.md)."""
_BALANCE = ("left", "right", "both")

Level = str | int


# -- parsed spec ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TieRule:
    """``rules.ties.<name>``: axes forced to share one value."""

    name: str
    axes: tuple[str, ...]


@dataclass(frozen=True)
class CoupleRule:
    """``rules.pairs.<name>`` (two sides, optional balance) or ``rules.tuples.<name>``."""

    kind: str
    """``pairs`` or ``tuples``."""
    name: str
    axes: tuple[str, ...]
    """Names coupled: (left, right) for pairs; the tuple's axes otherwise."""
    entries: tuple[Any, ...]
    """Allowed combinations as written (nested lists or flat rows)."""
    balance: str | None = None
    header: tuple[str, ...] | None = None
    """Column names when the entries came from a CSV include (used to match axes by name)."""
    origin: str = ""
    """Where the entries came from (``inline`` or the include path), for messages."""

    @property
    def rule(self) -> str:
        return f"rules.{self.kind}.{self.name}"


@dataclass(frozen=True)
class ComboSource:
    """``combos.<name>``: concept sets at one description level."""

    name: str
    sets: tuple[tuple[str, ...], ...]
    level: str
    k_max: int

    def requests(self) -> list[ComboRequest]:
        return [ComboRequest(s, self.level, self.k_max) for s in self.sets]


@dataclass(frozen=True)
class CohortSpec:
    """A parsed (not yet compiled) spec."""

    path: Path
    """The spec file (or ``<memory>``) named in every error message."""
    axes: dict[str, tuple[Level, ...]]
    """Declared axes with their levels, in declaration order (including replicate shorthands)."""
    subsets: dict[str, tuple[Level, ...]] = field(default_factory=dict)
    ties: tuple[TieRule, ...] = ()
    couples: tuple[CoupleRule, ...] = ()
    """Pairs then tuples, each in declaration order."""
    combos: tuple[ComboSource, ...] = ()
    field_order: tuple[str, ...] | None = None
    seed: int | None = None
    includes: tuple[Path, ...] = ()
    """Every ``@file:`` read, for the spec digest."""
    analysis_target: Path | None = None
    """``analysis.target``: a text file (relative to the spec) the analysis compares every
    essay with (similarity to a known idea); ``None`` when not given."""
    analysis_similarity: str = "tfidf"
    """``analysis.similarity``: ``tfidf`` (default, no model) or ``wordllama`` (semantic
    embeddings from the optional ``embeddings`` extra)."""
    adaptive: AdaptiveEvaluation | None = None
    """``adaptive.evaluation`` (outside the design: ids do not change); see :mod:`.spending`."""
    essay_gate: EssayGate | None = None
    """``gates.essay`` (outside the design: ids do not change); see :mod:`.spending`."""
    tournament: TournamentSpec | None = None
    """``tournament``: Swiss rounds of pairwise comparisons (outside the design); see :mod:`.tournament`."""

    def combo_requests(self) -> list[ComboRequest]:
        """Combinations the ``combos`` section asks for (to register before a build)."""
        return [r for source in self.combos for r in source.requests()]

    def digest(self) -> str:
        """SHA-256 over the spec file and its includes: changes when any of them changes."""
        h = hashlib.sha256()
        for path in (self.path, *self.includes):
            h.update(str(path.name).encode())
            if path.is_file():
                h.update(path.read_bytes())
        return h.hexdigest()


@dataclass(frozen=True)
class DesignRows:
    """Compiled design: ``rows`` (dicts axis -> value, keys in ``fields`` order)."""

    fields: tuple[str, ...]
    rows: list[dict[str, Level]]
    spec: CohortSpec

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Level]]:
        return iter(self.rows)

    def __getitem__(self, index: int) -> dict[str, Level]:
        return self.rows[index]

    def to_csv(self) -> str:
        """The rows as CSV text with a header."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.fields)
        getter = itemgetter(*self.fields)
        for row in self.rows:
            values = getter(row)
            writer.writerow(values if len(self.fields) > 1 else (values,))
        return buffer.getvalue()

    def to_jsonl(self) -> str:
        """The rows as JSON lines (one object per row, keys in field order)."""
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in self.rows)


# -- errors and scalar values ---------------------------------------------------------------
class _Ctx:
    """Error context: the spec path and the base directory of includes."""

    def __init__(self, path: Path, base_dir: Path) -> None:
        self.path = path
        self.base_dir = base_dir
        self.includes: list[Path] = []

    def error(self, rule: str, message: str) -> SpecError:
        return SpecError(f"{self.path}: {rule}: {message}")


def _scalar(ctx: _Ctx, rule: str, value: Any) -> Level:
    if isinstance(value, bool) or value is None or isinstance(value, float):
        raise ctx.error(rule, f"value {value!r} is not an id or integer; quote it if it is a name")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ctx.error(rule, "empty value")
        return text
    raise ctx.error(rule, f"expected a single value, got {type(value).__name__} {value!r}")


def _for_column(ctx: _Ctx, rule: str, column: str, value: Level) -> Level:
    """Normalise a level for ``column``: replicate axes hold integers >= 1, the others text."""
    if column.endswith("_replicate"):
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ctx.error(rule, f"replicate axis {column!r} needs integers >= 1, got {value!r}") from None
        if number < 1:
            raise ctx.error(rule, f"replicate axis {column!r} needs integers >= 1, got {value!r}")
        return number
    return str(value)


# -- includes ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Include:
    """A resolved ``@file:``: its rows and (CSV only) header."""

    values: list[Any]
    header: tuple[str, ...] | None
    path: Path


def _is_include(value: Any) -> bool:
    return isinstance(value, str) and value.strip().startswith("@file:")


def _load_include(ctx: _Ctx, rule: str, reference: str) -> _Include:
    relative = reference.strip().removeprefix("@file:").strip()
    if not relative:
        raise ctx.error(rule, f"{reference!r} names no file")
    path = Path(relative)
    if not path.is_absolute():
        path = ctx.base_dir / relative  # base_dir may be an object-store path (UPath)
    if not path.is_file():
        raise ctx.error(rule, f"{reference!r}: file not found: {path}")
    ctx.includes.append(path)
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
    if suffix == ".csv":
        return _load_csv_include(ctx, rule, path, text)
    if suffix == ".txt":
        values = [line.strip() for line in text.splitlines()]
        while values and not values[-1]:
            values.pop()
        for number, value in enumerate(values, start=1):
            if not value:
                raise ctx.error(rule, f"{path} line {number} is empty")
        if not values:
            raise ctx.error(rule, f"{path} has no values")
        return _Include(values, None, path)
    if suffix in (".yaml", ".yml", ".json"):
        try:
            data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ctx.error(rule, f"{path} is not valid {suffix[1:].upper()}: {exc}") from None
        if not isinstance(data, list) or not data:
            raise ctx.error(rule, f"{path} must hold a non-empty list")
        return _Include(data, None, path)
    raise ctx.error(rule, f"{path}: unsupported include type {suffix!r} (use .csv, .txt, .yaml, .yml or .json)")


def _load_csv_include(ctx: _Ctx, rule: str, path: Path, text: str) -> _Include:
    rows = list(csv.reader(io.StringIO(text)))
    while rows and not any(cell.strip() for cell in rows[-1]):
        rows.pop()  # trailing blank lines are formatting, not data
    if not rows:
        raise ctx.error(rule, f"{path} is empty; a CSV include needs a header row")
    header = tuple(h.strip() for h in rows[0])
    if any(not h for h in header):
        raise ctx.error(rule, f"{path} line 1: the header has an empty column name")
    if len(set(header)) != len(header):
        raise ctx.error(rule, f"{path} line 1: duplicate column names in the header {','.join(header)}")
    values: list[Any] = []
    for number, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            raise ctx.error(rule, f"{path} line {number} is empty")
        if len(cells) != len(header):
            raise ctx.error(rule, f"{path} line {number}: {len(cells)} cells but the header has {len(header)} columns")
        for column, cell in zip(header, cells, strict=True):
            if not cell.strip():
                raise ctx.error(rule, f"{path} line {number}: column {column!r} is empty")
        stripped = tuple(c.strip() for c in cells)
        values.append(stripped[0] if len(header) == 1 else stripped)
    if not values:
        raise ctx.error(rule, f"{path} has a header but no data rows")
    return _Include(values, header, path)


def _levels(ctx: _Ctx, rule: str, payload: Any) -> tuple[list[Any], tuple[str, ...] | None, str]:
    """A list written inline or included: (values, CSV header or None, origin)."""
    if _is_include(payload):
        include = _load_include(ctx, rule, payload)
        return include.values, include.header, str(include.path)
    if isinstance(payload, list | tuple):
        if not payload:
            raise ctx.error(rule, "the list is empty")
        return list(payload), None, "inline"
    raise ctx.error(rule, f"expected a list or '@file:path', got {type(payload).__name__} {payload!r}")


def _scalar_levels(ctx: _Ctx, rule: str, payload: Any) -> tuple[Level, ...]:
    values, header, origin = _levels(ctx, rule, payload)
    if header is not None and len(header) > 1:
        raise ctx.error(
            rule, f"{origin} has {len(header)} columns ({','.join(header)}); a list of levels takes one column"
        )
    return tuple(_scalar(ctx, rule, v) for v in values)


def _name_list(ctx: _Ctx, rule: str, payload: Any, minimum: int) -> tuple[str, ...]:
    if not isinstance(payload, list | tuple) or not all(isinstance(n, str) and n.strip() for n in payload):
        raise ctx.error(rule, f"'axes' must be a list of axis names, got {payload!r}")
    names = tuple(n.strip() for n in payload)
    if len(set(names)) != len(names):
        raise ctx.error(rule, f"axis listed twice in {list(names)}")
    if len(names) < minimum:
        raise ctx.error(rule, f"needs at least {minimum} axes, got {list(names)}")
    return names


def _check_keys(ctx: _Ctx, rule: str, payload: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(str(k) for k in payload if k not in allowed)
    if unknown:
        raise ctx.error(rule, f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _mapping(ctx: _Ctx, rule: str, payload: Any) -> Mapping[str, Any]:
    if payload is None:
        return {}
    if not isinstance(payload, Mapping):
        raise ctx.error(rule, f"expected a mapping, got {type(payload).__name__} {payload!r}")
    for key in payload:
        if not isinstance(key, str) or not key.strip():
            raise ctx.error(rule, f"names must be non-empty text, got {key!r}")
    return payload


# -- parsing -------------------------------------------------------------------------------
def _read_spec_file(path: Path) -> Any:
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            return yaml.safe_load(text)
        if suffix == ".json":
            return json.loads(text)
        if suffix == ".toml":
            return tomllib.loads(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    raise SpecError(f"{path}: unsupported spec format {suffix!r}; use .yaml, .yml, .json or .toml")


def load_spec(path: str | Path) -> CohortSpec:
    """Read and parse a spec file (YAML, JSON or TOML by extension)."""
    spec_path = as_root_path(path)  # local path, or s3://... on an object-store data root
    return parse_spec(_read_spec_file(spec_path), source=spec_path)


def parse_spec(data: Any, *, source: str | Path = "<memory>", base_dir: Path | None = None) -> CohortSpec:
    """Parse an already-loaded spec mapping; ``@file:`` paths resolve against ``base_dir``
    (default: the directory of ``source``)."""
    path = as_root_path(source)
    ctx = _Ctx(path, base_dir if base_dir is not None else path.parent)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ctx.error("top level", f"expected a mapping with 'axes', got {type(data).__name__}")
    _check_keys(ctx, "top level", data, _TOP_LEVEL)

    axes: dict[str, tuple[Level, ...]] = {}
    for name, payload in _mapping(ctx, "axes", data.get("axes")).items():
        rule = f"axes.{name}"
        if payload is None:
            continue  # `axis: null` documents an axis that a tuple defines
        axes[name.strip()] = _scalar_levels(ctx, rule, payload)

    for axis, payload in _mapping(ctx, "replicates", data.get("replicates")).items():
        rule = f"replicates.{axis}"
        column = f"{axis}_replicate"
        count = payload
        if isinstance(payload, Mapping):
            _check_keys(ctx, rule, payload, {"count", "column"})
            count = payload.get("count")
            column = payload.get("column") or column
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ctx.error(rule, f"count must be an integer >= 1, got {count!r}")
        if not isinstance(column, str) or not column.endswith("_replicate"):
            raise ctx.error(rule, f"replicate column must be text ending in '_replicate', got {column!r}")
        if column in axes:
            raise ctx.error(rule, f"column {column!r} is also declared under axes; keep one of them")
        axes[column] = tuple(range(1, count + 1))

    rules = _mapping(ctx, "rules", data.get("rules"))
    _check_keys(ctx, "rules", rules, set(_RULE_SECTIONS))

    subsets = {
        axis.strip(): _scalar_levels(ctx, f"rules.subsets.{axis}", payload)
        for axis, payload in _mapping(ctx, "rules.subsets", rules.get("subsets")).items()
    }

    ties: list[TieRule] = []
    for name, payload in _mapping(ctx, "rules.ties", rules.get("ties")).items():
        rule = f"rules.ties.{name}"
        if isinstance(payload, Mapping):
            _check_keys(ctx, rule, payload, {"axes"})
            payload = payload.get("axes")
        ties.append(TieRule(name=name.strip(), axes=_name_list(ctx, rule, payload, 2)))

    couples: list[CoupleRule] = []
    for name, payload in _mapping(ctx, "rules.pairs", rules.get("pairs")).items():
        rule = f"rules.pairs.{name}"
        payload = _mapping(ctx, rule, payload)
        _check_keys(ctx, rule, payload, {"left", "right", "allowed", "balance"})
        left, right = payload.get("left"), payload.get("right")
        if not isinstance(left, str) or not isinstance(right, str) or not left.strip() or not right.strip():
            raise ctx.error(rule, f"'left' and 'right' must name axes, got left={left!r}, right={right!r}")
        if left.strip() == right.strip():
            raise ctx.error(rule, f"'left' and 'right' are the same axis {left!r}")
        balance = payload.get("balance")
        if balance is not None and balance not in _BALANCE:
            raise ctx.error(rule, f"balance must be one of {', '.join(_BALANCE)}, got {balance!r}")
        if "allowed" not in payload:
            raise ctx.error(rule, "missing 'allowed' (a list of [left, right] pairs or '@file:path')")
        entries, header, origin = _levels(ctx, f"{rule}.allowed", payload.get("allowed"))
        couples.append(
            CoupleRule("pairs", name.strip(), (left.strip(), right.strip()), tuple(entries), balance, header, origin)
        )
    for name, payload in _mapping(ctx, "rules.tuples", rules.get("tuples")).items():
        rule = f"rules.tuples.{name}"
        payload = _mapping(ctx, rule, payload)
        _check_keys(ctx, rule, payload, {"axes", "items"})
        names = _name_list(ctx, rule, payload.get("axes"), 1)
        if "items" not in payload:
            raise ctx.error(rule, "missing 'items' (a list of value lists or '@file:path')")
        entries, header, origin = _levels(ctx, f"{rule}.items", payload.get("items"))
        couples.append(CoupleRule("tuples", name.strip(), names, tuple(entries), None, header, origin))

    combos = tuple(
        _parse_combo_source(ctx, name.strip(), payload)
        for name, payload in _mapping(ctx, "combos", data.get("combos")).items()
    )

    output = _mapping(ctx, "output", data.get("output"))
    _check_keys(ctx, "output", output, {"field_order", "seed"})
    field_order = output.get("field_order")
    if field_order is not None:
        if not isinstance(field_order, list) or not all(isinstance(f, str) for f in field_order):
            raise ctx.error("output.field_order", f"expected a list of column names, got {field_order!r}")
        duplicates = sorted({f for f in field_order if field_order.count(f) > 1})
        if duplicates:
            raise ctx.error("output.field_order", f"column(s) listed twice: {', '.join(duplicates)}")
        field_order = tuple(field_order)
    seed = output.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ctx.error("output.seed", f"expected an integer, got {seed!r}")

    analysis = _mapping(ctx, "analysis", data.get("analysis"))
    analysis_target = _analysis_target(ctx, analysis)
    similarity = analysis.get("similarity", "tfidf")
    if similarity not in SIMILARITY_METHODS:
        raise ctx.error("analysis.similarity", f"unknown method {similarity!r}; use one of {', '.join(SIMILARITY_METHODS)}")

    return CohortSpec(
        path=path,
        adaptive=parse_adaptive(ctx.error, data.get("adaptive"), seed),
        essay_gate=parse_gates(ctx.error, data.get("gates")),
        tournament=parse_tournament(ctx.error, data.get("tournament"), seed),
        analysis_target=analysis_target,
        analysis_similarity=similarity,
        axes=axes,
        subsets=subsets,
        ties=tuple(ties),
        couples=tuple(couples),
        combos=combos,
        field_order=field_order,
        seed=seed,
        includes=tuple(dict.fromkeys(ctx.includes)),
    )


def _analysis_target(ctx: _Ctx, analysis: Mapping[str, Any]) -> Path | None:
    """``analysis.target``: an existing text file, relative to the spec (not part of the design,
    so it does not change generation ids)."""
    _check_keys(ctx, "analysis", analysis, {"target", "similarity"})
    target = analysis.get("target")
    if target is None:
        return None
    if not isinstance(target, str) or not target.strip():
        raise ctx.error("analysis.target", f"expected the path of a text file, got {target!r}")
    path = Path(target.strip())
    if not path.is_absolute():
        path = ctx.base_dir / target.strip()
    if not path.is_file():
        raise ctx.error("analysis.target", f"file not found: {path} (the path is relative to the spec file)")
    return path


def _parse_combo_source(ctx: _Ctx, name: str, payload: Any) -> ComboSource:
    rule = f"combos.{name}"
    payload = _mapping(ctx, rule, payload)
    _check_keys(ctx, rule, payload, {"concepts", "k", "sets", "level", "k_max"})
    level = payload.get("level")
    if level not in DESCRIPTION_LEVELS:
        raise ctx.error(rule, f"level must be one of {', '.join(DESCRIPTION_LEVELS)}, got {level!r}")
    has_k, has_sets = "k" in payload, "sets" in payload
    if has_k == has_sets:
        raise ctx.error(rule, "give either 'k' (every k-subset of 'concepts') or 'sets' (explicit concept lists)")
    if has_k:
        if "concepts" not in payload:
            raise ctx.error(rule, "'k' needs 'concepts' (a list or '@file:path')")
        concepts = [str(_scalar(ctx, f"{rule}.concepts", c)) for c in _scalar_levels(ctx, f"{rule}.concepts", payload["concepts"])]
        try:
            sets = [tuple(s) for s in k_combinations(concepts, payload["k"])]
        except ValueError as exc:
            raise ctx.error(f"{rule}.k", str(exc)) from None
    else:
        if "concepts" in payload:
            raise ctx.error(rule, "'concepts' goes with 'k'; with 'sets' list the concepts inside each set")
        raw_sets, _header, _origin = _levels(ctx, f"{rule}.sets", payload["sets"])
        sets = []
        for entry in raw_sets:
            members = entry if isinstance(entry, list | tuple) else [entry]
            items = tuple(dict.fromkeys(str(_scalar(ctx, f"{rule}.sets", m)) for m in members))
            sets.append(items)
    largest = max(len(s) for s in sets)
    k_max = payload.get("k_max", largest)
    if isinstance(k_max, bool) or not isinstance(k_max, int) or k_max < largest:
        raise ctx.error(f"{rule}.k_max", f"must be an integer >= {largest} (the largest set), got {k_max!r}")
    return ComboSource(name=name, sets=tuple(dict.fromkeys(sets)), level=level, k_max=k_max)


# -- compiling -----------------------------------------------------------------------------
@dataclass
class _Factor:
    """One independent dimension of the product: a plain axis, a tie, a pair or a tuple."""

    name: str
    origin: str
    """Rule that made it (``axes.x``, ``rules.pairs.y``...), for messages."""
    columns: tuple[str, ...]
    levels: list[tuple[Level, ...]]
    """Flat values for ``columns``, one tuple per level."""
    keys: list[Hashable]
    """Logical value of each level (scalar, or nested tuple for couplings)."""
    shape: Any
    """A column name (scalar) or a tuple of child shapes (coupling)."""
    known: set[Hashable]
    """Keys that are valid but may have been filtered out by subsets/ties/couplings."""

    @property
    def plain(self) -> bool:
        """A single declared or tuple-derived axis (not yet tied or coupled)."""
        return len(self.columns) == 1 and self.shape == self.name

    def index(self) -> dict[Hashable, int]:
        return {key: i for i, key in enumerate(self.keys)}


def _leaf_count(shape: Any) -> int:
    return 1 if isinstance(shape, str) else sum(_leaf_count(s) for s in shape)


def _leaf_columns(shape: Any) -> list[str]:
    return [shape] if isinstance(shape, str) else [c for s in shape for c in _leaf_columns(s)]


def _read_nested(ctx: _Ctx, rule: str, entry: Any, shape: Any) -> Hashable:
    if isinstance(shape, str):
        return _for_column(ctx, rule, shape, _scalar(ctx, rule, entry))
    if not isinstance(entry, list | tuple) or len(entry) != len(shape):
        raise ValueError
    return tuple(_read_nested(ctx, rule, e, s) for e, s in zip(entry, shape, strict=True))


def _read_flat(ctx: _Ctx, rule: str, values: Iterator[Any], shape: Any) -> Hashable:
    if isinstance(shape, str):
        return _for_column(ctx, rule, shape, _scalar(ctx, rule, next(values)))
    return tuple(_read_flat(ctx, rule, values, s) for s in shape)


def _entry_key(ctx: _Ctx, rule: CoupleRule, entry: Any, shape: tuple[Any, ...], order: list[int] | None) -> Hashable:
    """Read one allowed entry (nested per axis, or flat in leaf-column order) into a key.

    ``order`` maps leaf columns to CSV columns when an include's header names them.
    """
    where = rule.rule
    leaves = _leaf_count(shape)
    if isinstance(entry, list | tuple):
        if order is not None and len(entry) == leaves:
            return _read_flat(ctx, where, iter([entry[i] for i in order]), shape)
        try:
            return _read_nested(ctx, where, entry, shape)
        except ValueError:
            pass
        if len(entry) == leaves and all(not isinstance(v, list | tuple) for v in entry):
            return _read_flat(ctx, where, iter(entry), shape)
    elif len(shape) == 1:
        return (_read_nested(ctx, where, entry, shape[0]),)
    raise ctx.error(
        where,
        f"entry {_show(entry)} does not match the axes {list(rule.axes)}: expected {len(shape)} values "
        f"(one per axis, nested for coupled axes) or {leaves} values for the columns {_leaf_columns(shape)}",
    )


def _header_order(ctx: _Ctx, rule: CoupleRule, shape: tuple[Any, ...]) -> list[int] | None:
    """Map CSV columns to leaf columns by name when the header names them all."""
    if rule.header is None or len(rule.header) < 2:
        return None
    columns = _leaf_columns(shape)
    if sorted(rule.header) == sorted(columns):
        return [rule.header.index(c) for c in columns]
    if len(rule.header) != len(columns):
        raise ctx.error(
            rule.rule,
            f"{rule.origin} has columns {','.join(rule.header)} but the axes {list(rule.axes)} need "
            f"{len(columns)} columns ({','.join(columns)})",
        )
    return None


class _Compiler:
    def __init__(self, spec: CohortSpec) -> None:
        self.spec = spec
        self.ctx = _Ctx(spec.path, spec.path.parent)
        self.order: list[_Factor] = []
        self.alias: dict[str, _Factor] = {}
        self.consumed: dict[str, str] = {}

    # -- factor bookkeeping --------------------------------------------------------------
    def _plain(self, name: str, origin: str, levels: Sequence[Level]) -> _Factor:
        values = list(dict.fromkeys(_for_column(self.ctx, origin, name, v) for v in levels))
        return _Factor(
            name=name,
            origin=origin,
            columns=(name,),
            levels=[(v,) for v in values],
            keys=list(values),
            shape=name,
            known=set(values),
        )

    def _lookup(self, rule: str, name: str) -> _Factor:
        factor = self.alias.get(name)
        if factor is not None:
            return factor
        if name in self.consumed:
            raise self.ctx.error(
                rule, f"axis {name!r} is already coupled by {self.consumed[name]}; refer to that rule's name instead"
            )
        known = sorted(self.alias)
        raise self.ctx.error(rule, f"unknown axis {name!r}; known: {', '.join(known) or '(none)'}")

    def _replace(self, parts: list[_Factor], new: _Factor, rule: str) -> None:
        clash = self.alias.get(new.name)
        if (clash is not None and clash not in parts) or new.name in self.consumed:
            raise self.ctx.error(rule, f"the name {new.name!r} is already used by an axis or another rule; rename it")
        position = min(self.order.index(p) for p in parts)
        for part in parts:
            self.order.remove(part)
        self.order.insert(position, new)
        for name, factor in list(self.alias.items()):
            if factor in parts:
                del self.alias[name]
                self.consumed[name] = rule
        self.alias[new.name] = new
        # A tie keeps answering to each tied axis's name (the values are equal anyway).
        if rule.startswith("rules.ties."):
            for column in new.columns:
                self.alias[column] = new

    # -- steps ---------------------------------------------------------------------------
    def declare(self) -> None:
        spec = self.spec
        axes = dict(spec.axes)
        if spec.combos:
            generated = [r.combo_id for r in spec.combo_requests()]
            declared = list(axes.get("combo_id", ()))
            axes["combo_id"] = tuple(dict.fromkeys([*declared, *generated]))
            if not declared:
                axes = {"combo_id": axes.pop("combo_id"), **axes}
        for name, levels in axes.items():
            factor = self._plain(name, f"axes.{name}", levels)
            self.order.append(factor)
            self.alias[name] = factor
        # Axes that only tuples define get their levels from the tuples' items (so subsets and
        # ties may refer to them like any axis).
        for rule in spec.couples:
            if rule.kind != "tuples":
                continue
            undeclared = [a for a in rule.axes if a not in self.alias and not self._is_rule_name(a)]
            if not undeclared:
                continue
            composite = [a for a in rule.axes if self._is_rule_name(a)]
            if composite:
                raise self.ctx.error(
                    rule.rule,
                    f"couples rule names {composite} with undeclared axes {undeclared}; "
                    "declare those axes under 'axes'",
                )
            shape = tuple(rule.axes)
            order = _header_order(self.ctx, rule, shape)
            derived: dict[str, list[Level]] = {a: [] for a in undeclared}
            for entry in rule.entries:
                key = _entry_key(self.ctx, rule, entry, shape, order)
                for axis, value in zip(rule.axes, key, strict=True):
                    if axis in derived:
                        derived[axis].append(value)
            for axis, values in derived.items():
                factor = self._plain(axis, rule.rule, values)
                self.order.append(factor)
                self.alias[axis] = factor

    def _is_rule_name(self, name: str) -> bool:
        return any(t.name == name for t in self.spec.ties) or any(c.name == name for c in self.spec.couples)

    def subsets(self) -> None:
        for axis, keep in self.spec.subsets.items():
            rule = f"rules.subsets.{axis}"
            factor = self._lookup(rule, axis)
            wanted = list(dict.fromkeys(_for_column(self.ctx, rule, axis, v) for v in keep))
            unknown = [v for v in wanted if v not in factor.known]
            if unknown:
                raise self.ctx.error(
                    rule,
                    f"level(s) {', '.join(map(str, unknown))} are not levels of axis {axis!r} "
                    f"({', '.join(map(str, factor.keys))})",
                )
            keep_set = set(wanted)
            pairs = [(lv, k) for lv, k in zip(factor.levels, factor.keys, strict=True) if k in keep_set]
            factor.levels = [lv for lv, _k in pairs]
            factor.keys = [k for _lv, k in pairs]

    def ties(self) -> None:
        for tie in self.spec.ties:
            rule = f"rules.ties.{tie.name}"
            parts = [self._lookup(rule, a) for a in tie.axes]
            for axis, part in zip(tie.axes, parts, strict=True):
                if not part.plain or parts.count(part) > 1:
                    raise self.ctx.error(
                        rule, f"axis {axis!r} is already tied by {part.origin}; list all its axes in one tie"
                    )
            other_sets = [set(p.keys) for p in parts[1:]]
            shared = [k for k in parts[0].keys if all(k in s for s in other_sets)]
            if not shared:
                listing = "; ".join(f"{a}: {', '.join(map(str, p.keys))}" for a, p in zip(tie.axes, parts, strict=True))
                raise self.ctx.error(rule, f"the tied axes share no level ({listing})")
            columns = tuple(c for p in parts for c in p.columns)
            new = _Factor(
                name=tie.name,
                origin=rule,
                columns=columns,
                levels=[(k,) * len(columns) for k in shared],
                keys=list(shared),
                shape=parts[0].shape,
                known=set().union(*(p.known for p in parts)),
            )
            self._replace(parts, new, rule)

    def couples(self) -> None:
        # Pairs before tuples, each in declaration order, except that a rule naming another
        # rule (a pair whose side is a tuple) waits until that rule has been applied.
        pending = list(self.spec.couples)
        while pending:
            ready = next((r for r in pending if all(a in self.alias for a in r.axes)), None)
            if ready is None:
                waiting = {r.name for r in pending}
                for rule in pending:
                    for axis in rule.axes:
                        if axis not in self.alias and axis not in waiting:
                            self._lookup(rule.rule, axis)  # raises the precise error
                rule = pending[0]
                raise self.ctx.error(
                    rule.rule, f"rules refer to each other in a cycle: {', '.join(r.rule for r in pending)}"
                )
            pending.remove(ready)
            self._couple(ready)

    def _couple(self, rule: CoupleRule) -> None:
        parts = [self._lookup(rule.rule, a) for a in rule.axes]
        for axis, part in zip(rule.axes, parts, strict=True):
            if parts.count(part) > 1:
                raise self.ctx.error(rule.rule, f"axis {axis!r} appears twice (through {part.origin})")
        shape = tuple(p.shape for p in parts)
        order = _header_order(self.ctx, rule, shape)
        indexes = [p.index() for p in parts]
        seen: set[Hashable] = set()
        levels: list[tuple[Level, ...]] = []
        keys: list[Hashable] = []
        known: set[Hashable] = set()
        for entry in rule.entries:
            key = _entry_key(self.ctx, rule, entry, shape, order)
            positions = []
            for axis, part, index, sub in zip(rule.axes, parts, indexes, key, strict=True):
                if sub not in part.known:
                    raise self.ctx.error(
                        rule.rule,
                        f"value {_show(sub)} (entry {entry!r}) is not a level of {axis!r} "
                        f"(levels: {', '.join(_show(k) for k in part.keys) or 'none'})",
                    )
                positions.append(index.get(sub))
            known.add(key)
            if None in positions or key in seen:
                continue  # filtered by a subset/tie, or a duplicate entry
            seen.add(key)
            keys.append(key)
            levels.append(tuple(v for part, i in zip(parts, positions, strict=True) for v in part.levels[i]))
        if not keys:
            raise self.ctx.error(rule.rule, "no entry survives the subsets and ties applied before it")
        if rule.balance:
            sides = {"left": (0,), "right": (1,), "both": (0, 1)}[rule.balance]
            for side in sides:
                counts = Counter(k[side] for k in keys)  # type: ignore[index]
                if len(set(counts.values())) > 1:
                    detail = ", ".join(f"{_show(v)}: {n}" for v, n in counts.items())
                    raise self.ctx.error(
                        rule.rule,
                        f"balance={rule.balance} but the {('left', 'right')[side]} side {rule.axes[side]!r} is "
                        f"unbalanced (pairs per level: {detail})",
                    )
        new = _Factor(
            name=rule.name,
            origin=rule.rule,
            columns=tuple(c for p in parts for c in p.columns),
            levels=levels,
            keys=keys,
            shape=shape,
            known=known,
        )
        self._replace(parts, new, rule.rule)

    def emit(self) -> DesignRows:
        spec = self.spec
        for factor in self.order:
            if not factor.levels:
                raise self.ctx.error(factor.origin, f"axis {factor.name!r} has no levels left")
        columns = [c for f in self.order for c in f.columns]
        if not columns:
            raise self.ctx.error("axes", "the spec defines no axes")
        fields = list(columns)
        if spec.field_order:
            unknown = [f for f in spec.field_order if f not in columns]
            if unknown:
                raise self.ctx.error(
                    "output.field_order",
                    f"unknown column(s) {', '.join(unknown)}; the design has {', '.join(columns)}",
                )
            fields = [*spec.field_order, *(c for c in columns if c not in spec.field_order)]
        level_lists = [f.levels for f in self.order]
        position = {c: i for i, c in enumerate(columns)}
        permute = itemgetter(*(position[f] for f in fields))
        chain = itertools.chain.from_iterable
        names = tuple(fields)
        if len(fields) == 1:
            rows = [{names[0]: permute(tuple(chain(combo)))} for combo in itertools.product(*level_lists)]
        else:
            rows = [dict(zip(names, permute(tuple(chain(combo))), strict=True)) for combo in itertools.product(*level_lists)]
        if spec.seed is not None:
            random.Random(spec.seed).shuffle(rows)
        return DesignRows(fields=names, rows=rows, spec=spec)


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def compile_spec(spec: CohortSpec) -> DesignRows:
    """Compile a parsed spec into design rows (pure; writes nothing).

    Raises :class:`SpecError` naming the spec file, the rule and the offending value.
    """
    compiler = _Compiler(spec)
    compiler.declare()
    compiler.subsets()
    compiler.ties()
    compiler.couples()
    return compiler.emit()


def compile_design(spec_path: str | Path) -> DesignRows:
    """Load and compile the spec at ``spec_path`` (a file, or a ``spec/`` directory)."""
    path = as_root_path(spec_path)
    if path.is_dir():
        path = find_spec_file(path)
    return compile_spec(load_spec(path))


def find_spec_file(spec_dir: Path) -> Path:
    """The spec file in a cohort's ``spec/`` directory (``config.yaml``, ``.yml``, ``.json``, ``.toml``)."""
    for name in SPEC_FILENAMES:
        candidate = spec_dir / name
        if candidate.is_file():
            return candidate
    raise SpecError(f"{spec_dir}: no spec file; expected one of {', '.join(SPEC_FILENAMES)}")
