"""``daydream cohort``: preview, scaffold, build and list cohorts.

- ``compile SPEC`` prints the design rows a spec produces (CSV or JSON lines) and, on stderr,
  the row count and the generations and model calls per stage it implies; nothing is written
  except ``--out``.
- ``new COHORT_ID`` writes a commented starter spec to ``cohorts/<id>/spec/config.yaml``.
- ``build COHORT_ID`` validates the cohort, seeds metadata and writes its membership.
- ``list`` shows the cohorts found under the data root.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..data_layer import Paths, default_data_root
from ..types import STAGES

_DEFAULTS = {
    "draft_template": "my-draft-template",
    "essay_template": "my-essay-template",
    "evaluation_template": "my-evaluation-template",
    "concepts": "concept-a, concept-b, concept-c",
}

_SPEC_TEMPLATE = """\
# Cohort spec for '{cohort_id}'. Preview it with:
#   daydream cohort compile {spec_path}
# then build and run it with `daydream run {cohort_id}`.
# Syntax reference: the docstring of daydreaming_dagster/cohorts/spec.py.
description: {cohort_id}

# Content combinations built from concepts (ids from 1_raw/concepts_metadata.csv).
# `k: 2` asks for every 2-subset of the list; `sets: [[a, b], [c, d]]` lists them instead.
# The generated combo ids join the combo_id axis and are registered in combo_mappings.csv.
combos:
  main:
    concepts: [{concepts}]
    k: 2
    level: paragraph          # sentence | paragraph | article

axes:
  # combo_id: [combo_abc123]  # combos already in combo_mappings.csv can be listed here
  draft_template: [{draft_template}]
  draft_llm: [offline]        # ids from 1_raw/llm_models.csv
  essay_template: [{essay_template}]
  essay_llm: [offline]
  evaluation_template: [{evaluation_template}]
  evaluation_llm: [offline]
  # evaluation_template_replicate: [1, 2]   # run each evaluation twice
  # Any axis may read its levels from a one-column CSV beside this file:
  # evaluation_llm: '@file:evaluators.csv'

# rules:                      # applied in this order: subsets, ties, pairs, tuples
#   subsets:
#     draft_template: [{draft_template}]
#   ties:                     # same model for drafts and essays
#     same_llm: {{axes: [draft_llm, essay_llm]}}
#   pairs:                    # only these (draft template, essay template) pairs
#     draft_essay:
#       left: draft_template
#       right: essay_template
#       allowed: [[{draft_template}, {essay_template}]]   # or '@file:pairs.csv'
#       balance: left         # left | right | both
#   tuples:                   # only these (evaluation template, evaluator) combinations
#     evaluator:
#       axes: [evaluation_template, evaluation_llm]
#       items: [[{evaluation_template}, offline]]

output:
  field_order: [combo_id, draft_template, draft_llm, essay_template, essay_llm, evaluation_template, evaluation_llm]
"""


@click.group()
def cohort() -> None:
    """Preview, scaffold, build and list cohorts."""


def _data_root_for_spec(spec: Path, data_root: str | None) -> Path | None:
    """The data root whose catalogs describe ``spec``: --data-root, else the root a spec at
    ``<root>/cohorts/<id>/spec/<file>`` lives in, else the default root if it exists."""
    if data_root:
        return Path(data_root)
    resolved = spec.resolve()
    if len(resolved.parents) > 3 and resolved.parents[2].name == "cohorts":
        return resolved.parents[3]
    default = Path(default_data_root())
    return default if default.is_dir() else None


def _summarise(design: object, root: Path | None) -> list[str]:
    from ..catalogs import load_catalogs
    from ..cohorts import build_membership
    from ..errors import DaydreamError

    lines = [f"{len(design)} design rows"]  # type: ignore[arg-type]
    catalogs = None
    note = ""
    if root is not None and Paths(root).templates_csv("essay").exists():
        try:
            catalogs = load_catalogs(root)
        except DaydreamError as exc:
            note = f" (catalogs unreadable, copy mode not detected: {exc})"
    else:
        note = " (no catalogs found: copy-mode essays counted as model calls; pass --data-root)"
    try:
        membership = build_membership(design, catalogs, validate=False)  # type: ignore[arg-type]
    except DaydreamError as exc:
        return [*lines, f"generations: not computed ({exc})"]
    counts, calls = membership.counts(), membership.model_calls()
    for stage in STAGES:
        if counts[stage]:
            lines.append(f"{stage}: {counts[stage]} generations, {calls[stage]} model calls")
    lines.append(f"total: {len(membership)} generations, {sum(calls.values())} model calls{note}")
    return lines


@cohort.command("compile")
@click.argument("spec", type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default=None,
              help="Output format (default: from --out's extension, else csv).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write rows to this file instead of stdout.")
@click.option("--data-root", type=str, default=None,
              help="Data root whose catalogs tell copy-mode essays apart (default: the spec's own root).")
def compile_command(spec: Path, fmt: str | None, out: Path | None, data_root: str | None) -> None:
    """Print the design rows SPEC compiles to (a spec file or a cohort's spec/ directory).

    One row per combination, one column per axis. The row count and the model calls per stage
    go to stderr, so the rows can be piped.
    """
    from ..cohorts import compile_design

    design = compile_design(spec)
    if fmt is None:
        fmt = "jsonl" if out is not None and out.suffix.lower() in (".jsonl", ".ndjson") else "csv"
    text = design.to_csv() if fmt == "csv" else design.to_jsonl()
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    spec_file = spec if spec.is_file() else design.spec.path
    for line in _summarise(design, _data_root_for_spec(spec_file, data_root)):
        click.echo(line, err=True)
    if out is not None:
        click.echo(f"wrote {out}", err=True)


def _first(ids: list[str], fallback: str) -> str:
    return ids[0] if ids else fallback


@cohort.command("new")
@click.argument("cohort_id")
@click.option("--data-root", type=str, default=None, help="Data root (default: $DAYDREAMING_DATA_ROOT or ./data).")
def new_command(cohort_id: str, data_root: str | None) -> None:
    """Scaffold a commented spec at cohorts/COHORT_ID/spec/config.yaml (never overwrites)."""
    from ..catalogs import load_catalogs
    from ..cohorts.spec import SPEC_FILENAMES
    from ..errors import DaydreamError
    from ..ids import is_valid_gen_id

    if not is_valid_gen_id(cohort_id):
        raise click.BadParameter(
            f"{cohort_id!r} is not a valid cohort id (ASCII letters, digits, '_' or '-')", param_hint="COHORT_ID"
        )
    root = data_root or default_data_root()
    paths = Paths.from_str(root)
    spec_dir = paths.cohort_spec_dir(cohort_id)
    existing = [spec_dir / n for n in SPEC_FILENAMES if (spec_dir / n).exists()]
    if existing:
        raise click.ClickException(f"{existing[0]} already exists; edit it or choose another cohort id")
    values = dict(_DEFAULTS)
    # Fill the starter spec with ids from the catalogs when there are any, so it compiles as is.
    try:
        catalogs = load_catalogs(root)
        values["draft_template"] = _first(list(catalogs.templates["draft"]), values["draft_template"])
        values["essay_template"] = _first(list(catalogs.templates["essay"]), values["essay_template"])
        values["evaluation_template"] = _first(list(catalogs.templates["evaluation"]), values["evaluation_template"])
        if len(catalogs.concepts) >= 3:
            values["concepts"] = ", ".join(list(catalogs.concepts)[:3])
    except DaydreamError:
        pass
    spec_path = paths.cohort_spec_path(cohort_id)
    text = _SPEC_TEMPLATE.format(cohort_id=cohort_id, spec_path=spec_path, **values)
    spec_dir.mkdir(parents=True, exist_ok=True)
    try:
        with open(spec_path, "x", encoding="utf-8") as handle:  # "x": never clobber a racing writer
            handle.write(text)
    except FileExistsError:
        raise click.ClickException(f"{spec_path} already exists; edit it or choose another cohort id") from None
    click.echo(f"created {spec_path}")
    click.echo(f"preview it with: daydream cohort compile {spec_path}", err=True)


@cohort.command("build")
@click.argument("cohort_id")
@click.option("--data-root", type=str, default=None, help="Data root (default: $DAYDREAMING_DATA_ROOT or ./data).")
def build_command(cohort_id: str, data_root: str | None) -> None:
    """Validate COHORT_ID, seed its generations' metadata and write membership.csv (no model calls)."""
    from ..cohorts import build_cohort

    build = build_cohort(data_root or default_data_root(), cohort_id)
    counts, calls = build.membership.counts(), build.membership.model_calls()
    for stage in STAGES:
        click.echo(f"{stage}: {counts[stage]} generations, {calls[stage]} model calls")
    click.echo(
        f"metadata: {build.metadata_written} seeded, {build.metadata_kept} already present; "
        f"files changed: {len(build.files_changed)}"
    )


@cohort.command("list")
@click.option("--data-root", type=str, default=None, help="Data root (default: $DAYDREAMING_DATA_ROOT or ./data).")
def list_command(data_root: str | None) -> None:
    """List cohorts with a spec, and whether each has been built."""
    from ..cohorts import discover_cohorts

    root = data_root or default_data_root()
    paths = Paths.from_str(root)
    for cohort_id in discover_cohorts(root):
        built = "built" if paths.cohort_membership_path(cohort_id).is_file() else "not built"
        click.echo(f"{cohort_id}\t{built}")
