"""Diversity and novelty of a cohort's texts: near-duplicate clusters of essays and drafts,
distinct clusters and mean pairwise distance per template/model, similarity to a target text.

Methods (the spec's ``analysis.similarity``):

- ``tfidf`` (default): TF-IDF vectors (scikit-learn, word unigrams and bigrams, sublinear term
  frequency, English stop words removed) compared by cosine similarity; no model at all.
- ``wordllama``: semantic embeddings from WordLlama's 256-dimension model, whose weights and
  tokenizer ship inside the ``wordllama`` wheel (optional extra ``embeddings``; no PyTorch,
  nothing downloaded at run time).

Two texts whose cosine similarity is at least the method's threshold are linked; clusters
are the connected groups of linked texts (single linkage).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from ..cohorts.spec import find_spec_file, load_spec
from ..data_layer import Paths
from ..errors import SpecError
from ..results.cohort import CohortRecords, load_cohort_records
from ._model import ClusterRow, Diversity

__all__ = ["NEAR_DUPLICATE", "cohort_diversity", "text_diversity"]

NEAR_DUPLICATE = 0.8
"""Cosine similarity (TF-IDF) at or above which two texts count as near-duplicates."""
NEAR_DUPLICATE_SEMANTIC = 0.95
"""The same for WordLlama embeddings: unrelated texts on one topic already reach ~0.8 there."""
METHODS = {"tfidf": ("tfidf-cosine", NEAR_DUPLICATE), "wordllama": ("wordllama-cosine", NEAR_DUPLICATE_SEMANTIC)}
_FACTORS = {
    "essay": ("draft_template", "draft_llm", "essay_template", "essay_llm"),
    "draft": ("draft_template", "draft_llm"),
}


def _wordllama_vectors(texts: list[str], extra: list[str]) -> tuple[sparse.csr_matrix, sparse.csr_matrix | None]:
    """L2-normalised WordLlama embeddings, loaded from the files inside the installed wheel."""
    try:
        import wordllama
        from wordllama import WordLlama
    except ImportError:
        raise SpecError(
            "analysis.similarity 'wordllama' needs the optional extra: uv sync --extra embeddings "
            "(or pip install 'daydreaming_dagster[embeddings]')"
        ) from None
    # The wheel ships weights/ and tokenizers/; pointing the cache there keeps it offline.
    model = WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
    matrix = sparse.csr_matrix(np.asarray(model.embed(texts + extra, norm=True), dtype=np.float64))
    return matrix[: len(texts)], (matrix[len(texts):] if extra else None)


def _vectors(
    texts: list[str], extra: list[str], method: str = "tfidf"
) -> tuple[sparse.csr_matrix, sparse.csr_matrix | None]:
    """L2-normalised rows for ``texts`` (and ``extra``, in the same space)."""
    if method == "wordllama":
        return _wordllama_vectors(texts, extra)
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english", ngram_range=(1, 2))
    try:
        matrix = vectorizer.fit_transform(texts + extra)
    except ValueError:  # every text empty or stop words only: nothing to compare
        matrix = sparse.csr_matrix((len(texts) + len(extra), 1))
    return matrix[: len(texts)], (matrix[len(texts):] if extra else None)


def _clusters(vectors: sparse.csr_matrix, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Cluster number (1 = largest) per text and the similarity matrix (dense)."""
    similarity = (vectors @ vectors.T).toarray()
    linked = sparse.csr_matrix(similarity >= threshold)
    _, labels = connected_components(linked, directed=False)
    sizes = np.bincount(labels)
    order = sorted(range(sizes.size), key=lambda c: (-sizes[c], int(np.flatnonzero(labels == c)[0])))
    renumber = np.empty(sizes.size, dtype=np.int64)
    renumber[order] = np.arange(1, sizes.size + 1)
    return renumber[labels], similarity


def text_diversity(
    kind: str,
    ids: list[str],
    texts: list[str],
    factors: dict[str, list[str]],
    target_text: str | None = None,
    method: str = "tfidf",
) -> tuple[list[ClusterRow], list[dict[str, object]]]:
    """Clusters of one kind of text and per-level diversity rows.

    ``factors`` maps a factor name to each text's level. A level's ``mean_pairwise_distance``
    is the mean of 1 - cosine similarity over all pairs of its texts (``None`` below two).
    """
    if not ids:
        return [], []
    vectors, target = _vectors(texts, [target_text] if target_text is not None else [], method)
    labels, similarity = _clusters(vectors, METHODS[method][1])
    sizes = np.bincount(labels)
    to_target = (vectors @ target.T).toarray().ravel() if target is not None else None
    rows = [
        ClusterRow(kind, gen_id, int(labels[i]), int(sizes[labels[i]]),
                   float(to_target[i]) if to_target is not None else None)
        for i, gen_id in enumerate(ids)
    ]
    by_level: list[dict[str, object]] = []
    for factor, levels in factors.items():
        values = np.asarray(levels, dtype=object)
        for level in sorted(set(levels)):
            idx = np.flatnonzero(values == level)
            distance = None
            if idx.size >= 2:
                block = similarity[np.ix_(idx, idx)]
                pairs = block[np.triu_indices(idx.size, k=1)]
                distance = float(np.mean(1.0 - pairs))
            by_level.append({"kind": kind, "factor": factor, "level": level, "n": int(idx.size),
                             "n_clusters": int(np.unique(labels[idx]).size), "mean_pairwise_distance": distance})
    return rows, by_level


def _spec_settings(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> tuple[str | None, str | None, str]:
    """(target path, target text, similarity method) from the spec's ``analysis`` section."""
    spec_dir = Paths.from_str(data_root).cohort_spec_dir(cohort_id)
    try:
        spec = load_spec(find_spec_file(spec_dir))
    except SpecError:
        if not spec_dir.is_dir():
            return None, None, "tfidf"  # a cohort without its spec (copied results): defaults
        raise
    if spec.analysis_target is None:
        return None, None, spec.analysis_similarity
    text = spec.analysis_target.read_text(encoding="utf-8", errors="replace")
    return str(spec.analysis_target), text, spec.analysis_similarity


def _texts(cohort: CohortRecords, stage: str) -> tuple[list[str], list[str], dict[str, list[str]]]:
    ids, texts = [], []
    factors: dict[str, list[str]] = {f: [] for f in _FACTORS[stage]}
    layer = cohort.layer
    for record in cohort.member_records(stage):  # type: ignore[arg-type]
        if record.status != "ok":
            continue
        ids.append(record.gen_id)
        texts.append(layer.read_parsed(record.stage, record.gen_id))
        draft = record if stage == "draft" else cohort.parent(record)
        levels = {
            "draft_template": draft.template_id if draft else None,
            "draft_llm": draft.llm_model_id if draft else None,
            "essay_template": record.template_id,
            "essay_llm": record.llm_model_id if record.mode != "copy" else "(copy)",
        }
        for factor in factors:
            factors[factor].append(levels[factor] or "(none)")
    return ids, texts, factors


@dataclass(frozen=True)
class DiversityInputs:
    """Everything :func:`cohort_diversity` reads from disk: the parsed texts and their levels
    per stage, and the spec's target text and similarity method."""

    texts: dict[str, tuple[list[str], list[str], dict[str, list[str]]]]
    """stage -> (gen ids, parsed texts, factor -> level per text)."""
    target_path: str | None
    target_text: str | None
    method: str

    def essay_lengths(self) -> dict[str, int]:
        """Essay id → length of its parsed text in words (for the judges' length-bias check)."""
        ids, texts, _ = self.texts.get("essay", ([], [], {}))
        return {gen_id: len(text.split()) for gen_id, text in zip(ids, texts, strict=True)}

    def fingerprint_parts(self) -> list[str]:
        """The inputs as strings, in a fixed order (for a content hash)."""
        parts = [self.target_path or "", self.target_text or "", self.method]
        for stage, (ids, texts, factors) in self.texts.items():
            parts += [stage, *ids, *texts]
            for factor, levels in factors.items():
                parts += [factor, *levels]
        return parts


def diversity_inputs(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> DiversityInputs:
    """Read what :func:`diversity_from_inputs` needs (cheap: no vectorising)."""
    cohort = load_cohort_records(data_root, cohort_id)
    target_path, target_text, method = _spec_settings(data_root, cohort_id)
    return DiversityInputs({stage: _texts(cohort, stage) for stage in ("essay", "draft")},
                           target_path, target_text, method)


def diversity_from_inputs(inputs: DiversityInputs) -> Diversity:
    """TF-IDF diversity of the given texts (see :func:`cohort_diversity`)."""
    clusters: list[ClusterRow] = []
    by_level: list[dict[str, object]] = []
    for stage, (ids, texts, factors) in inputs.texts.items():
        target = inputs.target_text if stage == "essay" else None
        rows, levels = text_diversity(stage, ids, texts, factors, target, inputs.method)
        clusters += rows
        by_level += levels
    schema = {"kind": pl.String, "factor": pl.String, "level": pl.String, "n": pl.Int64, "n_clusters": pl.Int64,
              "mean_pairwise_distance": pl.Float64}
    name, threshold = METHODS[inputs.method]
    return Diversity(name, threshold, tuple(clusters), pl.DataFrame(by_level, schema=schema), inputs.target_path)


def cohort_diversity(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> Diversity:
    """TF-IDF diversity of the cohort's parsed essays and drafts (see module docstring), with
    each essay's similarity to the spec's ``analysis.target`` text when the spec names one."""
    return diversity_from_inputs(diversity_inputs(data_root, cohort_id))
