"""Deterministic identifiers: generation ids and content-combination ids.

A generation id is a stage prefix plus a fixed-length base-36 digest of the stage's
normalised signature, so compiling the same cohort twice (in any process, on any machine)
yields the same ids, and changing any axis yields a new id instead of overwriting an old
generation. The digest scheme is versioned by ``_ID_SCHEME``; changing it would orphan every
existing gens store, which is why tests pin concrete values.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from .types import Stage, ensure_stage

GEN_ID_PREFIX: dict[str, str] = {"draft": "d_", "essay": "e_", "evaluation": "v_", "comparison": "p_"}
DIGEST_LENGTH = 16
COMBO_DIGEST_LENGTH = 12
COPY_MODEL_MARKER = "copy"
_ID_SCHEME = "daydream-gen-v1"
_COMBO_SCHEME = "daydream-combo-v1"
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"

# Ids are used as directory names and partition keys: keep them to a portable alphabet.
GEN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


def is_valid_gen_id(gen_id: object) -> bool:
    """True when ``gen_id`` is safe to use as a single path component and partition key."""
    return isinstance(gen_id, str) and bool(GEN_ID_PATTERN.fullmatch(gen_id))


# Catalog ids (templates, models, concepts) may also contain '.', as the established
# DayDreaming catalogs do (``gemini_2.5_flash``). They still start with a letter or digit and
# hold no '/', so a template or concept id used as a file name stays one path component
# (never '.', '..' nor hidden). Gen ids stay digests and never contain a catalog id verbatim.
CATALOG_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def is_valid_catalog_id(value: object) -> bool:
    """True when ``value`` is a valid template, model or concept id (gen id alphabet plus '.')."""
    return isinstance(value, str) and bool(CATALOG_ID_PATTERN.fullmatch(value))


def ensure_catalog_id(value: object, what: str = "catalog id") -> str:
    """Return ``value`` or raise ``ValueError`` explaining the allowed pattern."""
    if not is_valid_catalog_id(value):
        raise ValueError(
            f"invalid {what} {value!r}: use 1-128 ASCII letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return value  # type: ignore[return-value]


def ensure_gen_id(gen_id: object) -> str:
    """Return ``gen_id`` or raise ``ValueError`` explaining the allowed pattern."""
    if not is_valid_gen_id(gen_id):
        raise ValueError(
            f"invalid gen_id {gen_id!r}: use 1-128 ASCII letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return gen_id  # type: ignore[return-value]


def _base36(number: int, width: int) -> str:
    digits: list[str] = []
    while number:
        number, rem = divmod(number, 36)
        digits.append(_ALPHABET[rem])
    text = "".join(reversed(digits)) or "0"
    return text.rjust(width, "0")[-width:]


def _digest(scheme: str, parts: Iterable[str], width: int) -> str:
    payload = "\x1f".join([scheme, *parts]).encode("utf-8")
    return _base36(int.from_bytes(hashlib.sha256(payload).digest(), "big"), width)


def normalise_part(name: str, value: object) -> str:
    """Trim and lower-case one signature part; reject missing or empty values with its name."""
    if value is None:
        raise ValueError(f"signature part {name!r} is missing")
    if isinstance(value, bool):
        raise ValueError(f"signature part {name!r} must be text or an integer, got {value!r}")
    text = str(value).strip().lower()
    if not text:
        raise ValueError(f"signature part {name!r} is empty")
    return text


def _normalise_replicate(replicate: object) -> str:
    try:
        number = int(str(replicate).strip())
    except (TypeError, ValueError):
        raise ValueError(f"signature part 'replicate' must be a positive integer, got {replicate!r}") from None
    if number < 1:
        raise ValueError(f"signature part 'replicate' must be >= 1, got {replicate!r}")
    return str(number)


def gen_id_from_signature(stage: Stage, signature: dict[str, object]) -> str:
    """Digest an ordered signature (part name -> value) into ``<prefix><16 base-36 chars>``."""
    stage = ensure_stage(stage)
    parts = [stage]
    for name, value in signature.items():
        text = _normalise_replicate(value) if name == "replicate" else normalise_part(name, value)
        parts.append(f"{name}={text}")
    return GEN_ID_PREFIX[stage] + _digest(_ID_SCHEME, parts, DIGEST_LENGTH)


def draft_gen_id(combo_id: str, template_id: str, llm_model_id: str, replicate: int = 1) -> str:
    """Id of a draft: (combo, draft template, draft model, replicate)."""
    return gen_id_from_signature(
        "draft",
        {"combo_id": combo_id, "template_id": template_id, "llm_model_id": llm_model_id, "replicate": replicate},
    )


def essay_gen_id(
    parent_gen_id: str, template_id: str, llm_model_id: str | None, replicate: int = 1
) -> str:
    """Id of an essay: (parent draft, essay template, essay model, replicate).

    ``llm_model_id=None`` means copy mode: the essay copies its draft and no model takes part.
    """
    model = COPY_MODEL_MARKER if llm_model_id is None else llm_model_id
    return gen_id_from_signature(
        "essay",
        {"parent_gen_id": parent_gen_id, "template_id": template_id, "llm_model_id": model, "replicate": replicate},
    )


def evaluation_gen_id(parent_gen_id: str, template_id: str, llm_model_id: str, replicate: int = 1) -> str:
    """Id of an evaluation: (parent essay, evaluation template, evaluator model, replicate)."""
    return gen_id_from_signature(
        "evaluation",
        {"parent_gen_id": parent_gen_id, "template_id": template_id, "llm_model_id": llm_model_id, "replicate": replicate},
    )


def comparison_gen_id(
    essay_a: str, essay_b: str, template_id: str, llm_model_id: str, replicate: int = 1
) -> str:
    """Id of a comparison: (essay shown first, essay shown second, comparison template, judge
    model, replicate). The order matters: (A, B) and (B, A) are two generations."""
    if normalise_part("essay_a", essay_a) == normalise_part("essay_b", essay_b):
        raise ValueError(f"a comparison needs two different essays, got {essay_a!r} twice")
    return gen_id_from_signature(
        "comparison",
        {"parent_gen_id": essay_a, "second_parent_gen_id": essay_b, "template_id": template_id,
         "llm_model_id": llm_model_id, "replicate": replicate},
    )


def combo_id_for(concept_ids: Iterable[str], description_level: str, k_max: int) -> str:
    """Deterministic combo id from (sorted unique concept ids, description level, k_max)."""
    concepts = sorted({normalise_part("concept_id", c) for c in concept_ids})
    if not concepts:
        raise ValueError("a combination needs at least one concept id")
    level = normalise_part("description_level", description_level)
    if int(k_max) < len(concepts):
        raise ValueError(f"k_max={k_max} is smaller than the {len(concepts)} concepts in the combination")
    parts = [f"level={level}", f"k_max={int(k_max)}", *(f"concept={c}" for c in concepts)]
    return "combo_" + _digest(_COMBO_SCHEME, parts, COMBO_DIGEST_LENGTH)
