"""A simulated cohort with planted essay qualities and evaluator offsets (test helper)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daydreaming_dagster.cohorts.membership import Membership, MembershipRow


@dataclass(frozen=True)
class Planted:
    membership: Membership
    quality: dict[str, float]
    """Essay id -> planted quality."""
    offsets: dict[str, float]
    """Evaluation template -> planted offset."""
    noise: float

    def score(self, row: MembershipRow) -> float:
        rng = np.random.default_rng(abs(hash_text(row.gen_id)) % 2**32)
        return float(self.quality[row.parent_gen_id] + self.offsets[row.template_id] + rng.normal(0, self.noise))

    def true_top(self, k: int) -> set[str]:
        return set(sorted(self.quality, key=lambda e: -self.quality[e])[:k])


def hash_text(text: str) -> int:
    import hashlib

    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


def planted_cohort(essays: int = 60, evaluators: int = 8, seed: int = 1, noise: float = 1.0) -> Planted:
    rng = np.random.default_rng(seed)
    drafts = tuple(MembershipRow("draft", f"d_{i:04d}", None, "links", "m", f"c{i}", 1, "llm") for i in range(essays))
    essay_rows = tuple(MembershipRow("essay", f"e_{i:04d}", f"d_{i:04d}", "expand", "m", f"c{i}", 1, "llm")
                       for i in range(essays))
    templates = [f"eval-{j}" for j in range(evaluators)]
    evaluation_rows = tuple(MembershipRow("evaluation", f"v_{i:04d}_{j}", f"e_{i:04d}", templates[j], "judge",
                                          f"c{i}", 1, "llm") for i in range(essays) for j in range(evaluators))
    quality = {e.gen_id: float(q) for e, q in zip(essay_rows, rng.normal(0, 1, essays), strict=True)}
    offsets = {t: float(o) for t, o in zip(templates, rng.normal(0, 0.5, evaluators), strict=True)}
    return Planted(Membership(drafts, essay_rows, evaluation_rows), quality, offsets, noise)
