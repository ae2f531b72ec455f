"""One standard set of assets every IO manager test materialises.

It covers dict and DataFrame values, unpartitioned and partitioned assets, a same-partition
downstream read, an unpartitioned asset reading every partition (dict partition → value), a
single run over several partitions returning a dict of frames, and an asset returning None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl
from dagster import (
    AssetsDefinition,
    BackfillPolicy,
    ConfigurableIOManager,
    DagsterInstance,
    ExecuteInProcessResult,
    StaticPartitionsDefinition,
    asset,
    materialize,
)

PARTITIONS = ("c1", "c2")
PARTS = StaticPartitionsDefinition(list(PARTITIONS))

CONFIG_VALUE = {"name": "demo", "values": [1, 2, 3], "nested": {"ok": True, "label": "ü"}}
SCORES = pl.DataFrame(
    {
        "essay_id": ["e_2", "e_1", "e_3"],  # deliberately unsorted: row order must survive
        "score": [7.5, 9.0, 3.25],
        "n": [2, 1, 3],
        "passed": [True, True, False],
    }
)


def cohort_frame(key: str) -> pl.DataFrame:
    """Rows that differ per partition, so a mixed-up partition shows."""
    size = 2 if key == "c1" else 3
    return pl.DataFrame(
        {"gen_id": [f"{key}_{i}" for i in range(size)], "value": [float(i) for i in range(size)]}
    )


def cohort_dict(key: str) -> dict[str, Any]:
    return {"cohort": key, "members": [f"{key}_{i}" for i in range(2)]}


@dataclass
class ScenarioRun:
    """What the scenario's assets loaded and the Dagster results of each run."""

    loaded: dict[Any, Any] = field(default_factory=dict)
    results: list[ExecuteInProcessResult] = field(default_factory=list)
    instance: DagsterInstance | None = None

    def everything_recorded(self) -> str:
        """Every event-log entry and run config of the scenario's runs, as text (to look for
        secrets that must never be written)."""
        assert self.instance is not None
        parts = []
        for result in self.results:
            parts.extend(repr(entry) for entry in self.instance.all_logs(result.run_id))
            parts.append(repr(self.instance.get_run_by_id(result.run_id).run_config))
        return "\n".join(parts)

    def output_metadata(self, asset_name: str) -> list[dict[str, Any]]:
        """Metadata of every materialisation of ``asset_name``, as plain values."""
        found = []
        for result in self.results:
            for event in result.get_asset_materialization_events():
                materialization = event.event_specific_data.materialization
                if materialization.asset_key.path[-1] == asset_name:
                    found.append(
                        {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
                    )
        return found


def build_assets(run: ScenarioRun, io_manager_key: str = "io_manager") -> list[AssetsDefinition]:
    """The scenario's assets; loaded inputs are recorded into ``run.loaded``."""

    @asset(io_manager_key=io_manager_key)
    def config_dict() -> dict:
        return CONFIG_VALUE

    @asset(io_manager_key=io_manager_key)
    def score_table() -> pl.DataFrame:
        return SCORES

    @asset(io_manager_key=io_manager_key, partitions_def=PARTS)
    def cohort_info(context) -> dict:
        return cohort_dict(context.partition_key)

    @asset(io_manager_key=io_manager_key, partitions_def=PARTS)
    def cohort_table(context) -> pl.DataFrame:
        return cohort_frame(context.partition_key)

    @asset(io_manager_key=io_manager_key, partitions_def=PARTS)
    def cohort_echo(context, cohort_info: dict, cohort_table: pl.DataFrame):
        run.loaded[("echo", context.partition_key)] = (cohort_info, cohort_table)
        return None  # stores nothing

    @asset(io_manager_key=io_manager_key)
    def summary(config_dict: dict, score_table: pl.DataFrame, cohort_info, cohort_table) -> dict:
        run.loaded["summary"] = (config_dict, score_table, cohort_info, cohort_table)
        return {
            "cohorts": sorted(cohort_info),
            "rows": sum(f.height for f in cohort_table.values()),
        }

    @asset(
        io_manager_key=io_manager_key,
        partitions_def=PARTS,
        backfill_policy=BackfillPolicy.single_run(),
    )
    def batch_table(context) -> dict:
        return {
            key: cohort_frame(key).with_columns(pl.lit("batch").alias("origin"))
            for key in context.partition_keys
        }

    @asset(
        io_manager_key=io_manager_key,
        partitions_def=PARTS,
        backfill_policy=BackfillPolicy.single_run(),
    )
    def batch_none(context):
        run.loaded["batch_none_keys"] = list(context.partition_keys)
        return None

    return [
        config_dict,
        score_table,
        cohort_info,
        cohort_table,
        cohort_echo,
        summary,
        batch_table,
        batch_none,
    ]


def run_scenario(
    manager: ConfigurableIOManager,
    *,
    resources: dict[str, Any] | None = None,
    io_manager_key: str = "io_manager",
) -> ScenarioRun:
    """Materialise the whole scenario with ``manager`` and return what was loaded."""
    run = ScenarioRun()
    assets = build_assets(run, io_manager_key)
    by_name = {a.key.path[-1]: a for a in assets}
    all_resources = {io_manager_key: manager, **(resources or {})}
    instance = DagsterInstance.ephemeral()
    run.instance = instance

    def go(names: list[str], **kwargs: Any) -> None:
        result = materialize(
            assets,
            selection=[by_name[n] for n in names],
            resources=all_resources,
            instance=instance,
            **kwargs,
        )
        assert result.success
        run.results.append(result)

    go(["config_dict", "score_table"])
    for key in PARTITIONS:
        go(["cohort_info", "cohort_table", "cohort_echo"], partition_key=key)
    go(["summary"])
    go(
        ["batch_table", "batch_none"],
        tags={
            "dagster/asset_partition_range_start": PARTITIONS[0],
            "dagster/asset_partition_range_end": PARTITIONS[-1],
        },
    )
    return run


def assert_loaded_values(run: ScenarioRun) -> None:
    """Every load in the scenario returned exactly what was stored."""
    for key in PARTITIONS:
        info, table = run.loaded[("echo", key)]
        assert info == cohort_dict(key)
        assert table.equals(cohort_frame(key))
    config, scores, infos, tables = run.loaded["summary"]
    assert config == CONFIG_VALUE
    assert scores.equals(SCORES)
    assert infos == {key: cohort_dict(key) for key in PARTITIONS}
    assert set(tables) == set(PARTITIONS)
    for key in PARTITIONS:
        assert tables[key].equals(cohort_frame(key))
    assert run.loaded["batch_none_keys"] == list(PARTITIONS)
