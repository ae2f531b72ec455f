"""Dagster partition definitions: one dynamic partition set per stage, keyed by gen_id, and
cohort partitions discovered from the specs on disk."""

from __future__ import annotations

from dagster import DynamicPartitionsDefinition

from .types import Stage

draft_gens_partitions = DynamicPartitionsDefinition(name="draft_gens")
essay_gens_partitions = DynamicPartitionsDefinition(name="essay_gens")
evaluation_gens_partitions = DynamicPartitionsDefinition(name="evaluation_gens")
comparison_gens_partitions = DynamicPartitionsDefinition(name="comparison_gens")
cohort_partitions = DynamicPartitionsDefinition(name="cohorts")

STAGE_PARTITIONS: dict[Stage, DynamicPartitionsDefinition] = {
    "draft": draft_gens_partitions,
    "essay": essay_gens_partitions,
    "evaluation": evaluation_gens_partitions,
    "comparison": comparison_gens_partitions,
}


def partitions_name(stage: Stage) -> str:
    """Name of the dynamic partitions holding ``stage``'s gen ids (``draft_gens``...)."""
    return STAGE_PARTITIONS[stage].name  # type: ignore[return-value]
