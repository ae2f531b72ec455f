"""``daydream analyze``: confidence intervals, ranking stability, evaluator agreement, variance
by axis and diversity for a cohort or for any score CSV (logic in ``daydreaming_dagster.analysis``)."""

from __future__ import annotations

import json

import click

from ._common import data_root_option, resolve_data_root

_SHOWN_ESSAYS = 10


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _summary_lines(analysis) -> list[str]:  # noqa: ANN001 - analysis.Analysis (imported lazily)
    scale = f" on {analysis.scale}" if analysis.scale else ""
    lines = [f"{analysis.n_essays} essays, {analysis.n_scores} scores{scale}; 95% CIs, "
             f"{analysis.n_boot} draws / resamples (seed {analysis.seed})"]
    lines += [f"note: {note}" for note in analysis.notes]
    lines.append("top essays (evaluator-adjusted mean [95% CI], n, P(top 1), P(top 5)):")
    for essay in analysis.essays[:_SHOWN_ESSAYS]:
        lines.append(f"  {essay.essay_gen_id}  {_fmt(essay.mean)} [{_fmt(essay.ci_low)}, {_fmt(essay.ci_high)}]  "
                     f"n={essay.n}  {_fmt(essay.p_top.get(1))}  {_fmt(essay.p_top.get(5))}")
    lines.append(analysis.top_tie.sentence())
    if analysis.alpha is not None:
        low, high = analysis.alpha_ci or (None, None)
        lines.append(f"evaluator agreement: Krippendorff's alpha {_fmt(analysis.alpha)} [{_fmt(low)}, {_fmt(high)}]")
    else:
        lines.append(f"evaluator agreement: {analysis.alpha_note}")
    flagged = [e.evaluator for e in analysis.evaluators if e.flagged]
    if flagged:
        lines.append(f"evaluators whose agreement with the rest is below 0.3 (whole 95% CI): {', '.join(flagged)}")
    families = {d.factor: d for d in analysis.differences}
    for factor, d in families.items():
        clear = [x for x in analysis.differences if x.factor == factor and x.excludes_zero]
        lines.append(f"{factor}: {len(clear)} of {sum(x.factor == factor for x in analysis.differences)} differences "
                     f"exclude 0 ({d.method}, adjusted for {d.family_size} comparisons)")
    if analysis.variance:
        lines.append(analysis.top_factor_sentence)
    if analysis.humans is not None:
        raters = ", ".join(f"{r.rater} (n={r.n})" for r in analysis.humans.raters)
        pooled = "pooled into the statistics above" if analysis.include_humans else "kept apart from the LLM statistics"
        lines.append(f"human raters {pooled}: {raters}")
    if analysis.design_advice is not None:
        lines.append(f"design advice: {analysis.design_advice.sentence}")
    if analysis.tournament is not None:
        lines += _tournament_lines(analysis.tournament)
    return lines


def _tournament_lines(tournament) -> list[str]:  # noqa: ANN001 - analysis.Tournament (imported lazily)
    pooled = tournament.pooled
    lines = [f"pairwise tournament: {pooled.n_comparisons} verdicts by {', '.join(pooled.judges)} "
             f"(Bradley-Terry strengths, log scale, 95% pair-bootstrap CIs)"]
    lines += [f"note: {note}" for note in tournament.notes]
    lines.append("top essays (strength [95% CI], P(top 1), P(top 5), wins-losses-ties):")
    for s in pooled.strengths[:_SHOWN_ESSAYS]:
        lines.append(f"  {s.essay_gen_id}  {_fmt(s.strength)} [{_fmt(s.ci_low)}, {_fmt(s.ci_high)}]  "
                     f"{_fmt(s.p_top_1)}  {_fmt(s.p_top_5)}  {s.wins}-{s.losses}-{s.ties}")
    bias = pooled.position_bias
    lines.append(f"position bias (first shown): {_fmt(bias.estimate)} [{_fmt(bias.ci_low)}, {_fmt(bias.ci_high)}] "
                 f"on the log-odds scale; P(first of two equal essays wins) {_fmt(bias.p_first_wins)}")
    c = pooled.consistency
    if c.n_pairs:
        lines.append(f"order consistency: {c.n_agree} of {c.n_pairs} pairs judged in both orders agree "
                     f"({_fmt(c.share)} [{_fmt(c.ci_low)}, {_fmt(c.ci_high)}])")
    tau = pooled.tau_with_scores
    if tau is not None:
        lines.append(f"tournament vs score ranking: Kendall's tau {_fmt(tau.tau)} [{_fmt(tau.ci_low)}, "
                     f"{_fmt(tau.ci_high)}] over {tau.n} essays")
    for judge in tournament.judges:
        jb = judge.position_bias
        lines.append(f"  judge {judge.judge}: {judge.n_comparisons} verdicts, position bias {_fmt(jb.estimate)} "
                     f"[{_fmt(jb.ci_low)}, {_fmt(jb.ci_high)}], consistency "
                     f"{judge.consistency.n_agree}/{judge.consistency.n_pairs}")
    return lines


@click.command("analyze")
@click.argument("cohort_id", required=False)
@click.option("--scores", "scores_csv", type=str, default=None,
              help="Analyse this CSV (essay_gen_id, evaluator, score[, scale], factor columns) instead of a cohort.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the summary.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the resampling (same seed, same numbers).")
@click.option("--bootstrap", "n_boot", type=click.IntRange(1), default=1000, show_default=True,
              help="Bootstrap resamples for CIs and top-k probabilities.")
@click.option("--include-humans", is_flag=True,
              help="Pool human/<rater> ratings into the LLM statistics (by default they are a panel of their own).")
@click.option("--target-width", type=float, default=None,
              help="Essay-interval half-width to plan for: prints how many evaluators and replicates reach it.")
@data_root_option
def analyze(cohort_id: str | None, scores_csv: str | None, as_json: bool, seed: int, n_boot: int,
            include_humans: bool, target_width: float | None, data_root: str | None) -> None:
    """Analyse COHORT's scores (written to results/COHORT/analysis/) or a score CSV (--scores).

    Reports each essay's evaluator-adjusted mean with a 95% CI and its probability of being in
    the top 1/5/10, level means and family-adjusted differences for every axis (drafts as
    units when the scores carry draft_gen_id), the share of score variance each axis explains,
    evaluator agreement with intervals, human raters as their own panel and, with
    --target-width, how many evaluators and replicates the next cohort needs. A cohort with a
    pairwise tournament also gets Bradley-Terry strengths, the judges' position bias and order
    consistency (JSON key "tournament"; human judges pooled only with --include-humans). Bad
    input exits 2 with one error line.
    """
    from ..analysis import analyze_cohort, analyze_scores, read_score_csv, write_analysis

    if (cohort_id is None) == (scores_csv is None):
        raise click.UsageError("give either a COHORT or --scores FILE.csv (not both)")
    if scores_csv is not None:
        analysis = analyze_scores(read_score_csv(scores_csv), seed=seed, n_boot=n_boot, source=scores_csv,
                                  include_humans=include_humans, target_width=target_width)
        written = {}
    else:
        root = resolve_data_root(data_root)
        analysis = analyze_cohort(root, cohort_id, seed=seed, n_boot=n_boot, include_humans=include_humans,
                                  target_width=target_width)
        written = write_analysis(root, cohort_id, analysis)
    if as_json:
        click.echo(json.dumps(analysis.to_json()))
    else:
        for line in _summary_lines(analysis):
            click.echo(line)
    if written:
        click.echo(f"analysis files: {written['summary'].parent}", err=True)
