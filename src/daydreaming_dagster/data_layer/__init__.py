"""The data layer: every read and write of the data root goes through here (no Dagster)."""

from .gens_data_layer import GenerationMetadata, GensDataLayer, resolve_generation_metadata
from .paths import (
    DATA_ROOT_ENV,
    METADATA_FILENAME,
    PARSED_FILENAME,
    PARSED_METADATA_FILENAME,
    PROMPT_FILENAME,
    RAW_FAILURE_LOG_FILENAME,
    RAW_FILENAME,
    RAW_METADATA_FILENAME,
    Paths,
    default_data_root,
)

__all__ = [
    "DATA_ROOT_ENV",
    "METADATA_FILENAME",
    "PARSED_FILENAME",
    "PARSED_METADATA_FILENAME",
    "PROMPT_FILENAME",
    "RAW_FAILURE_LOG_FILENAME",
    "RAW_FILENAME",
    "RAW_METADATA_FILENAME",
    "GenerationMetadata",
    "GensDataLayer",
    "Paths",
    "default_data_root",
    "resolve_generation_metadata",
]
