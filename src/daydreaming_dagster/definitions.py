"""The one place that wires assets, resources and storage into a Dagster ``Definitions``.

``DAYDREAMING_DATA_ROOT`` picks the data root (default ``data``); ``DAYDREAMING_ENV`` picks the
storage set for reporting assets (dev: filesystem + DuckDB; staging/prod: S3 + PostgreSQL;
see ``environments.py`` and docs/operations.md). Model keys come from the environment only.
"""

from __future__ import annotations

from typing import Any

from dagster import Definitions

from daydreaming_dagster.assets.cohort import COHORT_ASSETS, prune_partitions_job
from daydreaming_dagster.assets.generation import GENERATION_ASSETS
from daydreaming_dagster.assets.results import RESULTS_ASSETS
from daydreaming_dagster.automation import AUTOMATION_JOBS, AUTOMATION_SENSORS, executor_from_env
from daydreaming_dagster.dagster_settings import apply_dagster_event_settings
from daydreaming_dagster.data_layer import default_data_root
from daydreaming_dagster.gens_prompt_io_manager import GensPromptIOManager
from daydreaming_dagster.resources import DataRootResource, LLMResource, StageSettingsResource

apply_dagster_event_settings()

def build_resources(
    data_root: str | None = None,
    *,
    stage_settings: StageSettingsResource | None = None,
    llm: LLMResource | None = None,
    env: str | None = None,
) -> dict[str, Any]:
    """Resources for a data root; the CLI passes run-specific settings (force, concurrency...)."""
    root = data_root or default_data_root()
    resources: dict[str, Any] = {
        "data_root": DataRootResource(root=root),
        "stage_settings": stage_settings or StageSettingsResource(),
        "llm": llm or LLMResource(),
        "prompt_io_manager": GensPromptIOManager(data_root=root),
    }
    resources.update(_storage_resources(root, env))
    return resources


def _storage_resources(data_root: str, env: str | None) -> dict[str, Any]:
    from daydreaming_dagster.environments import io_managers_for_environment

    return io_managers_for_environment(env, data_root=data_root)


ALL_ASSETS = [*COHORT_ASSETS, *GENERATION_ASSETS, *RESULTS_ASSETS]


def build_definitions(data_root: str | None = None, **kwargs: Any) -> Definitions:
    return Definitions(
        assets=ALL_ASSETS,
        jobs=[prune_partitions_job, *AUTOMATION_JOBS],
        sensors=AUTOMATION_SENSORS,
        resources=build_resources(data_root, **kwargs),
        # DAYDREAMING_EXECUTOR=celery|in_process|multiprocess (unset: Dagster's default).
        executor=executor_from_env(),
    )


defs = build_definitions()
