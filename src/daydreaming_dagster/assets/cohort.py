"""Cohort assets (group ``cohort``), partitioned by cohort id, and partition maintenance.

- ``cohort_id``: builds the cohort on disk (validate, register combos, seed metadata, write
  ``membership.csv`` and ``manifest.json``) and returns the manifest.
- ``cohort_membership``: the membership as a polars DataFrame (from ``membership.csv`` and
  the seeded metadata, i.e. what the stages will actually read).
- ``content_combinations``: the hydrated combinations the cohort's drafts use.
- ``register_cohort_partitions``: adds the cohort's gen ids to the ``draft_gens``,
  ``essay_gens`` and ``evaluation_gens`` dynamic partitions, add-only and in membership order,
  so a cohort's new keys form one contiguous range per stage.

Cohort partition keys are the cohorts found under ``data/cohorts/*/spec/``;
:func:`sync_cohort_partitions` (also run by ``automation.cohort_automation_sensor``) adds them.
``prune_partitions_job`` removes dynamic partition keys that no cohort lists any more.
The logic lives in :mod:`daydreaming_dagster.cohorts`; these bodies only wire it.
"""

# No `from __future__ import annotations`: Dagster inspects the context/config annotations.
from typing import Any

import polars as pl
from dagster import (
    AssetExecutionContext,
    Config,
    DagsterInstance,
    MetadataValue,
    OpExecutionContext,
    asset,
    job,
    op,
)

from ..cohorts import (
    build_cohort,
    discover_cohorts,
    load_membership,
    read_membership,
    stale_partition_keys,
)
from ..combos import load_combinations
from ..data_layer import GensDataLayer, Paths
from ..partitions import cohort_partitions, partitions_name
from ..resources import DataRootResource
from ..types import STAGES

__all__ = [
    "COHORT_ASSETS",
    "cohort_id",
    "cohort_membership",
    "content_combinations",
    "prune_dynamic_partitions",
    "prune_partitions",
    "prune_partitions_job",
    "register_cohort_partitions",
    "register_membership_partitions",
    "sync_cohort_partitions",
]

GROUP = "cohort"


def sync_cohort_partitions(instance: DagsterInstance, data_root: str) -> list[str]:
    """Add every cohort found under ``data_root`` to the ``cohorts`` partitions; return the new ones."""
    name = cohort_partitions.name
    present = set(instance.get_dynamic_partitions(name))
    new = [c for c in discover_cohorts(data_root) if c not in present]
    if new:
        instance.add_dynamic_partitions(name, new)
    return new


def register_membership_partitions(instance: DagsterInstance, data_root: str, cohort: str) -> dict[str, int]:
    """Add a built cohort's gen ids to the stage partitions (add-only, membership order).

    Returns the number of keys added per stage; keys already present (shared with another
    cohort) keep their place.
    """
    members = read_membership(data_root, cohort)
    added: dict[str, int] = {}
    for stage in STAGES:
        name = partitions_name(stage)
        present = set(instance.get_dynamic_partitions(name))
        new = [g for g in members[stage] if g not in present]
        if new:
            instance.add_dynamic_partitions(name, new)
        added[stage] = len(new)
    return added


@asset(partitions_def=cohort_partitions, group_name=GROUP, io_manager_key="json_io_manager")
def cohort_id(context: AssetExecutionContext, data_root: DataRootResource) -> dict[str, Any]:
    """Build the cohort on disk and return its manifest."""
    build = build_cohort(data_root.root, context.partition_key)
    context.add_output_metadata(
        {
            "cohort_id": build.cohort_id,
            "spec": str(build.spec_path),
            **{f"{stage}_generations": n for stage, n in build.counts.items()},
            **{f"{stage}_model_calls": n for stage, n in build.membership.model_calls().items()},
            "metadata_seeded": build.metadata_written,
            "metadata_already_present": build.metadata_kept,
            "files_changed": MetadataValue.json(list(build.files_changed)),
        }
    )
    return build.manifest


@asset(partitions_def=cohort_partitions, group_name=GROUP, deps=[cohort_id], io_manager_key="table_io_manager")
def cohort_membership(context: AssetExecutionContext, data_root: DataRootResource) -> pl.DataFrame:
    """All membership rows (stage, gen_id, parent_gen_id, template_id, llm_model_id, combo_id,
    replicate, mode, cohort_id) of the cohort, drafts then essays then evaluations."""
    membership = load_membership(data_root.root, context.partition_key)
    frame = membership.to_frame().with_columns(pl.lit(context.partition_key).alias("cohort_id"))
    context.add_output_metadata(
        {
            "rows": frame.height,
            **{f"{stage}_generations": n for stage, n in membership.counts().items()},
            "preview": MetadataValue.md(_markdown_preview(frame.head(10))),
        }
    )
    return frame


@asset(partitions_def=cohort_partitions, group_name=GROUP, deps=[cohort_membership], io_manager_key="json_io_manager")
def content_combinations(context: AssetExecutionContext, data_root: DataRootResource) -> dict[str, Any]:
    """The combinations the cohort's drafts use: combo_id -> {level, k_max, concepts}."""
    layer = GensDataLayer.from_root(data_root.root)
    drafts = read_membership(data_root.root, context.partition_key)["draft"]
    combo_ids = list(dict.fromkeys(layer.read_main_metadata("draft", g).get("combo_id") for g in drafts))
    combos = load_combinations(data_root.root, [c for c in combo_ids if c])
    context.add_output_metadata({"combinations": len(combos)})
    return {
        combo.combo_id: {
            "description_level": combo.description_level,
            "k_max": combo.k_max,
            "concepts": combo.contents,
        }
        for combo in combos.values()
    }


@asset(partitions_def=cohort_partitions, group_name=GROUP, deps=[cohort_membership], io_manager_key="json_io_manager")
def register_cohort_partitions(context: AssetExecutionContext, data_root: DataRootResource) -> dict[str, int]:
    """Add the cohort's gen ids to the stage partitions; return how many were new per stage."""
    added = register_membership_partitions(context.instance, data_root.root, context.partition_key)
    context.add_output_metadata({f"{stage}_keys_added": n for stage, n in added.items()})
    return added


def _markdown_preview(frame: pl.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([header, rule, *body])


# -- maintenance ---------------------------------------------------------------------------
def prune_dynamic_partitions(instance: DagsterInstance, data_root: str, *, dry_run: bool = False) -> dict[str, list[str]]:
    """Delete dynamic partition keys that no cohort uses; return them per partition set.

    Stage keys survive when some cohort's ``membership.csv`` lists them; cohort keys survive
    while the cohort's spec exists. Generation files on disk are never touched, and a pruned
    key comes back when its cohort registers its partitions again. ``dry_run`` only reports.
    """
    cohorts = discover_cohorts(data_root)
    paths = Paths.from_str(data_root)
    referenced: dict[str, set[str]] = {partitions_name(stage): set() for stage in STAGES}
    for cohort in cohorts:
        if not paths.cohort_membership_path(cohort).is_file():
            continue  # not built yet: it references nothing (a malformed file still raises below)
        members = read_membership(data_root, cohort)
        for stage in STAGES:
            referenced[partitions_name(stage)].update(members[stage])
    referenced[cohort_partitions.name] = set(cohorts)
    present = {name: list(instance.get_dynamic_partitions(name)) for name in referenced}
    stale = stale_partition_keys(present, referenced)
    if not dry_run:
        for name, keys in stale.items():
            for key in keys:
                instance.delete_dynamic_partition(name, key)
    return stale


class PruneConfig(Config):
    """Configuration of :func:`prune_partitions`."""

    dry_run: bool = False
    """Only report the keys that would be removed."""


@op
def prune_partitions(context: OpExecutionContext, config: PruneConfig, data_root: DataRootResource) -> dict[str, list[str]]:
    """Remove partition keys that no cohort references (see :func:`prune_dynamic_partitions`)."""
    stale = prune_dynamic_partitions(context.instance, data_root.root, dry_run=config.dry_run)
    verb = "would remove" if config.dry_run else "removed"
    for name, keys in stale.items():
        context.log.info(f"{name}: {verb} {len(keys)} key(s)")
    return stale


@job(description="Remove dynamic partition keys that no cohort's membership lists.")
def prune_partitions_job() -> None:
    prune_partitions()


COHORT_ASSETS = [cohort_id, cohort_membership, content_combinations, register_cohort_partitions]
