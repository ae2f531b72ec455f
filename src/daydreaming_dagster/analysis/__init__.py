"""The analysis layer: answers with confidence (DESIGN §7). No Dagster here.

From one long score table (``essay_gen_id, evaluator, score[, scale]`` plus factor columns)
it estimates, each with a 95% confidence interval: every essay's mean score and its
probability of being in the top k; every factor level's mean and the differences between
levels; the share of score variance each axis, essays, evaluators and noise explain; and
evaluator agreement (Krippendorff's alpha, pairwise and consensus Spearman correlations,
self-consistency, human vs LLM). For a cohort it adds text diversity (near-duplicate clusters,
similarity to a target text). When the cohort ran a pairwise tournament it adds Bradley–Terry
strengths with bootstrap intervals, the judges' position bias, order consistency and the
agreement of the tournament ranking with the score ranking (``Analysis.tournament``).
``docs/analysis.md`` says what each number estimates.

Typical use::

    from daydreaming_dagster.analysis import analyze_cohort, write_analysis
    analysis = analyze_cohort("data", "demo", seed=0, n_boot=1000)
    write_analysis("data", "demo", analysis)   # data/results/demo/analysis/*.csv, summary.json
"""

from ._agreement import (
    FLAG_BELOW,
    HumanLlmAgreement,
    PairwiseAgreement,
    krippendorff_alpha_interval,
)
from ._api import (
    ANALYSIS_DIRNAME,
    DEFAULT_BOOTSTRAP,
    DEFAULT_SEED,
    SUMMARY_FILENAME,
    analysis_dir,
    analyze_cohort,
    analyze_cohort_or_empty,
    analyze_scores,
    forget_recent_analyses,
    human_llm_agreement,
    write_analysis,
)
from ._essay_model import EssayModelFit, fit_essay_model, project_out
from ._model import (
    Analysis,
    ClusterRow,
    Diversity,
    EssayResult,
    EvaluatorResult,
    LevelDifference,
    LevelResult,
    TopTie,
    VarianceShare,
)
from ._prefetch import discard_prefetch, start_prefetch, warm_prefetch
from ._table import (
    EVALUATOR_FACTORS,
    REQUIRED_COLUMNS,
    AnalysisInputError,
    load_score_table,
    prepare_scores,
    read_score_csv,
)
from ._tournament import (
    BradleyTerryFit,
    Consistency,
    EssayStrength,
    PositionBias,
    RankAgreement,
    Tournament,
    TournamentFit,
    analyze_tournament,
    fit_bradley_terry,
    pair_consistency,
    rank_agreement,
)

__all__ = [
    "ANALYSIS_DIRNAME",
    "DEFAULT_SEED",
    "discard_prefetch",
    "start_prefetch",
    "warm_prefetch",
    "DEFAULT_BOOTSTRAP",
    "EVALUATOR_FACTORS",
    "FLAG_BELOW",
    "REQUIRED_COLUMNS",
    "SUMMARY_FILENAME",
    "Analysis",
    "AnalysisInputError",
    "BradleyTerryFit",
    "Consistency",
    "EssayStrength",
    "PositionBias",
    "RankAgreement",
    "Tournament",
    "TournamentFit",
    "analyze_tournament",
    "fit_bradley_terry",
    "pair_consistency",
    "rank_agreement",
    "ClusterRow",
    "Diversity",
    "EssayModelFit",
    "EssayResult",
    "EvaluatorResult",
    "HumanLlmAgreement",
    "LevelDifference",
    "LevelResult",
    "PairwiseAgreement",
    "TopTie",
    "VarianceShare",
    "analysis_dir",
    "analyze_cohort",
    "analyze_cohort_or_empty",
    "forget_recent_analyses",
    "analyze_scores",
    "fit_essay_model",
    "project_out",
    "human_llm_agreement",
    "krippendorff_alpha_interval",
    "load_score_table",
    "prepare_scores",
    "read_score_csv",
    "write_analysis",
]
