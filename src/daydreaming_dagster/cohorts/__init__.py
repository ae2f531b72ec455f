"""Cohorts: the spec DSL, membership and the on-disk cohort build (no Dagster).

Typical use::

    from daydreaming_dagster.cohorts import build_cohort, read_membership
    build = build_cohort("data", "demo")       # compile, validate, seed metadata, write files
    read_membership("data", "demo")["draft"]   # gen ids, in membership order
"""

from .build import (
    CohortBuild,
    CompiledCohort,
    build_cohort,
    cohort_spec_path,
    compile_cohort,
    discover_cohorts,
    load_membership,
    read_membership,
)
from .membership import (
    MEMBERSHIP_COLUMNS,
    METADATA_KEYS,
    Membership,
    MembershipRow,
    build_membership,
    membership_problems,
    stale_partition_keys,
)
from .spec import (
    SPEC_FILENAMES,
    CohortSpec,
    DesignRows,
    compile_design,
    compile_spec,
    find_spec_file,
    load_spec,
    parse_spec,
)

__all__ = [
    "MEMBERSHIP_COLUMNS",
    "METADATA_KEYS",
    "SPEC_FILENAMES",
    "CohortBuild",
    "CohortSpec",
    "CompiledCohort",
    "DesignRows",
    "Membership",
    "MembershipRow",
    "build_cohort",
    "build_membership",
    "cohort_spec_path",
    "compile_cohort",
    "compile_design",
    "compile_spec",
    "discover_cohorts",
    "find_spec_file",
    "load_membership",
    "load_spec",
    "membership_problems",
    "parse_spec",
    "read_membership",
    "stale_partition_keys",
]
