"""Canonical file names and every path helper of the data root (DESIGN §2).

``Paths`` only builds paths; it never touches the filesystem. Every helper that takes a
``stage`` or ``gen_id`` validates it *before* building a path, so a hostile or mistaken id
(``../x``, ``a/b``, ``/etc``) can never point outside the data root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..ids import ensure_catalog_id, ensure_gen_id
from ..types import Stage, ensure_stage

PROMPT_FILENAME = "prompt.txt"
RAW_FILENAME = "raw.txt"
PARSED_FILENAME = "parsed.txt"
METADATA_FILENAME = "metadata.json"
RAW_METADATA_FILENAME = "raw_metadata.json"
PARSED_METADATA_FILENAME = "parsed_metadata.json"
RAW_FAILURE_LOG_FILENAME = "raw_failure.log"
CLAIM_FILENAME = "claim.json"
HUMAN_RATINGS_FILENAME = "human_ratings.jsonl"

DESCRIPTION_LEVELS: tuple[str, ...] = ("sentence", "paragraph", "article")
DATA_ROOT_ENV = "DAYDREAMING_DATA_ROOT"
DEFAULT_DATA_ROOT = "data"

__all__ = [
    "CLAIM_FILENAME",
    "DATA_ROOT_ENV",
    "DEFAULT_DATA_ROOT",
    "DESCRIPTION_LEVELS",
    "HUMAN_RATINGS_FILENAME",
    "METADATA_FILENAME",
    "PARSED_FILENAME",
    "PARSED_METADATA_FILENAME",
    "PROMPT_FILENAME",
    "RAW_FAILURE_LOG_FILENAME",
    "RAW_FILENAME",
    "RAW_METADATA_FILENAME",
    "Paths",
    "as_root_path",
    "default_data_root",
]


def default_data_root() -> str:
    """The data root from ``DAYDREAMING_DATA_ROOT``, else ``data`` (relative to the cwd)."""
    return os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT


def as_root_path(root: str | os.PathLike[str] | Any) -> Path:
    """Turn a root into a path object: local paths stay ``pathlib.Path``; URLs become ``UPath``.

    ``s3://bucket/prefix`` style roots go through universal-pathlib (fsspec), with the S3
    endpoint taken from ``AWS_ENDPOINT_URL`` when set, so the whole pipeline can run against
    object storage.
    """
    if isinstance(root, Path) or hasattr(root, "protocol"):
        return root  # already a path (a UPath is not a pathlib.Path and has no __fspath__)
    text = os.fspath(root)
    if "://" not in text:
        return Path(text)
    from upath import UPath  # imported lazily: local runs never pay for fsspec

    options: dict[str, Any] = {}
    if text.startswith(("s3://", "s3a://")):
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("DAYDREAMING_S3_ENDPOINT_URL")
        if endpoint:
            options["endpoint_url"] = endpoint
        # s3fs caches directory listings per process; with several workers writing the same
        # store a cached listing hides their generations, so every listing asks the server.
        options["use_listings_cache"] = False
    return UPath(text, **options)


@dataclass(frozen=True)
class Paths:
    """Path helpers rooted at ``data_root``."""

    data_root: Path

    @classmethod
    def from_str(cls, data_root: str | os.PathLike[str]) -> Paths:
        return cls(as_root_path(data_root))

    # -- gens store -------------------------------------------------------------------------
    @property
    def gens_root(self) -> Path:
        return self.data_root / "gens"

    def stage_dir(self, stage: Stage) -> Path:
        return self.gens_root / ensure_stage(stage)

    def generation_dir(self, stage: Stage, gen_id: str) -> Path:
        return self.stage_dir(stage) / ensure_gen_id(gen_id)

    def prompt_path(self, stage: Stage, gen_id: str) -> Path:
        return self.generation_dir(stage, gen_id) / PROMPT_FILENAME

    def raw_path(self, stage: Stage, gen_id: str) -> Path:
        return self.generation_dir(stage, gen_id) / RAW_FILENAME

    def parsed_path(self, stage: Stage, gen_id: str) -> Path:
        return self.generation_dir(stage, gen_id) / PARSED_FILENAME

    def metadata_path(self, stage: Stage, gen_id: str) -> Path:
        return self.generation_dir(stage, gen_id) / METADATA_FILENAME

    def raw_metadata_path(self, stage: Stage, gen_id: str) -> Path:
        return self.generation_dir(stage, gen_id) / RAW_METADATA_FILENAME

    def parsed_metadata_path(self, stage: Stage, gen_id: str) -> Path:
        return self.generation_dir(stage, gen_id) / PARSED_METADATA_FILENAME

    def raw_failure_log_path(self, stage: Stage, gen_id: str) -> Path:
        return self.generation_dir(stage, gen_id) / RAW_FAILURE_LOG_FILENAME

    def claim_path(self, stage: Stage, gen_id: str) -> Path:
        """The lease a process holds while it produces the generation's raw output."""
        return self.generation_dir(stage, gen_id) / CLAIM_FILENAME

    # -- raw catalogs (1_raw) ---------------------------------------------------------------
    @property
    def raw_dir(self) -> Path:
        return self.data_root / "1_raw"

    @property
    def concepts_metadata_csv(self) -> Path:
        return self.raw_dir / "concepts_metadata.csv"

    @property
    def concepts_dir(self) -> Path:
        return self.raw_dir / "concepts"

    def concept_descriptions_dir(self, level: str) -> Path:
        if level not in DESCRIPTION_LEVELS:
            raise ValueError(f"unknown description level {level!r}; known: {', '.join(DESCRIPTION_LEVELS)}")
        return self.concepts_dir / f"descriptions-{level}"

    def concept_description_path(self, level: str, concept_id: str) -> Path:
        return self.concept_descriptions_dir(level) / f"{ensure_catalog_id(concept_id, 'concept id')}.txt"

    def templates_csv(self, stage: Stage) -> Path:
        return self.raw_dir / f"{ensure_stage(stage)}_templates.csv"

    def templates_dir(self, stage: Stage) -> Path:
        return self.raw_dir / "templates" / ensure_stage(stage)

    def template_file(self, stage: Stage, template_id: str) -> Path:
        return self.templates_dir(stage) / f"{ensure_catalog_id(template_id, 'template id')}.txt"

    @property
    def llm_models_csv(self) -> Path:
        return self.raw_dir / "llm_models.csv"

    @property
    def combo_mappings_csv(self) -> Path:
        return self.data_root / "combo_mappings.csv"

    # -- cohorts ----------------------------------------------------------------------------
    @property
    def cohorts_dir(self) -> Path:
        return self.data_root / "cohorts"

    def cohort_dir(self, cohort_id: str) -> Path:
        return self.cohorts_dir / ensure_gen_id(cohort_id)

    def cohort_spec_dir(self, cohort_id: str) -> Path:
        return self.cohort_dir(cohort_id) / "spec"

    def cohort_spec_path(self, cohort_id: str) -> Path:
        return self.cohort_spec_dir(cohort_id) / "config.yaml"

    def cohort_manifest_path(self, cohort_id: str) -> Path:
        return self.cohort_dir(cohort_id) / "manifest.json"

    def cohort_membership_path(self, cohort_id: str) -> Path:
        return self.cohort_dir(cohort_id) / "membership.csv"

    def cohort_rounds_path(self, cohort_id: str) -> Path:
        """The record of a cohort's gate decisions and adaptive rounds (docs/adaptive.md)."""
        return self.cohort_dir(cohort_id) / "rounds.json"

    def cohort_reports_dir(self, cohort_id: str) -> Path:
        return self.cohort_dir(cohort_id) / "reports"

    def cohort_human_ratings_path(self, cohort_id: str) -> Path:
        return self.cohort_dir(cohort_id) / HUMAN_RATINGS_FILENAME

    # -- results ----------------------------------------------------------------------------
    @property
    def results_dir(self) -> Path:
        return self.data_root / "results"

    def cohort_results_dir(self, cohort_id: str) -> Path:
        return self.results_dir / ensure_gen_id(cohort_id)
