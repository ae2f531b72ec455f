"""The deploy/ instance templates load as real Dagster instances with the intended limits, and
the raw assets (only they call models) sit in the ``llm`` concurrency pool."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance

from daydreaming_dagster.definitions import defs
from tests.support.servers import PostgresServer

REPO = Path(__file__).resolve().parents[2]


def _instance(tmp_path: Path, template: str) -> DagsterInstance:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / template, home / "dagster.yaml")
    return DagsterInstance.from_config(str(home))


def _tag_limits(instance: DagsterInstance) -> dict[str, int]:
    limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    return {f"{item['key']}={item.get('value')}": item["limit"] for item in limits}


def test_local_template_limits_runs_per_provider_and_pools(tmp_path: Path) -> None:
    with _instance(tmp_path, "dagster.yaml") as instance:
        config = instance.get_concurrency_config()
        assert config.pool_config.default_pool_limit == 2
        assert config.run_queue_config.max_concurrent_runs == 8
        limits = _tag_limits(instance)
        assert limits["daydream/provider=openrouter"] == 2 and limits["daydream/provider=vllm"] == 1
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"


@pytest.mark.slow
def test_staging_template_runs_on_postgres(tmp_path: Path, postgres_server: PostgresServer,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_PG_URL", postgres_server.url("postgresql+psycopg2"))
    with _instance(tmp_path, "staging/dagster.yaml") as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 4
        assert _tag_limits(instance)["daydream/provider=openrouter"] == 4
        assert instance.event_log_storage.supports_global_concurrency_limits


def test_raw_assets_are_in_the_llm_pool() -> None:
    graph = defs.resolve_asset_graph()
    for stage in ("draft", "essay", "evaluation"):
        assert graph.get(AssetKey(f"{stage}_raw")).pools == {"llm"}
        assert not graph.get(AssetKey(f"{stage}_prompt")).pools
        assert not graph.get(AssetKey(f"{stage}_parsed")).pools
