"""Benchmark: pairwise Swiss tournament vs absolute scores at an equal number of judge calls
(issue 20).

Planted truth: ``--essays`` essays with qualities ``theta ~ N(0, 1)``. One simulated judge
perceives an essay's quality with noise ``N(0, --perception-sd)`` and answers either

- an **absolute** call: one essay, a score ``8.5 + spread * perceived + calibration`` rounded to
  the nearest 0.5 and clipped to 0-10, so scores bunch around 8-9 as LLM judges' do (compressed
  and coarse). ``spread`` (``--score-spread``, 0.25) is how far the score moves per SD of
  quality; ``calibration ~ N(0, --calibration-sd)`` (0.35) is the call's own drift of the
  absolute scale (where "8.5" sits today), which a judge reading two essays side by side does
  not pay: the usual argument for relative judgements. ``--calibration-sd 0`` removes it;
- a **pairwise** call: essays A (shown first) and B, answering by the Rao–Kupper model (a
  Bradley–Terry model with ties): ``d = beta * (theta_A - theta_B) + gamma + logistic noise``,
  A if ``d > tau``, B if ``d < -tau``, else a tie. ``gamma`` is a planted bias for the essay shown
  first (``--position-bias``, logit scale); ``beta = (pi / sqrt 3) / (sqrt 2 * perception_sd)``
  gives the pairwise noise the same spread as the difference of two perceptions.

At each budget of ``R`` calls per essay (``R * essays`` calls in all) it compares

- ``absolute``: each essay scored ``R`` times, ranked by its mean score;
- ``absolute (unrounded)``: the same without rounding, the control showing what the coarse
  scale costs;
- ``swiss``: ``R`` Swiss rounds from :func:`daydreaming_dagster.tournament.swiss_pairings`,
  every pair judged in both orders (``essays`` calls per round), fitted by Bradley–Terry;
- ``random pairs``: ``R`` rounds of random pairings, both orders, the same fit: the control
  showing what Swiss pairing itself adds;

and prints, over ``--seeds`` seeds, Kendall's tau of each ranking with the planted order and
top-5 recall (mean ± sd), and for the tournament the recovered position bias with its 95%
interval against the planted one (coverage: share of seeds whose interval contains it).

By default the tournament arms use the analysis package's own fit (``--fit package``: what
``daydream analyze`` reports, with its pair-bootstrap interval on the position bias);
``--fit reference`` uses the benchmark's independent implementation, a penalised
maximum-likelihood Rao–Kupper fit with a position effect and Wald intervals, as a cross-check.
Both take the project's verdict frame.

    uv run python benchmarks/tournament.py [--essays 40] [--seeds 20] [--budgets 3,5,8] [--fit package] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.optimize import minimize
from scipy.special import expit
from scipy.stats import kendalltau

from daydreaming_dagster.tournament import Verdict, swiss_pairings

TOP_K = 5
RIDGE = 0.1
"""Penalty ``RIDGE * sum(strength**2)`` of the reference fit, a N(0, 2.24²) prior on the
strengths (wider than the planted spread, beta = 1.28): pins their level, keeps an essay that won
every game finite, and tames the incidental-parameter bias of the position effect (with 0.01,
three rounds of 40 essays overestimate a planted 0.40 as 0.68, intervals covering 75%)."""


@dataclass(frozen=True)
class Judge:
    """The simulated judge's planted parameters."""

    perception_sd: float
    score_spread: float
    """Score points per SD of perceived quality (absolute calls)."""
    calibration_sd: float
    """SD of an absolute call's drift of the whole scale."""
    position_bias: float
    """gamma: logit advantage of the essay shown first."""
    tie_threshold: float
    """tau: half-width of the tie band on the logit scale (``tie_model="threshold"``)."""
    tie_model: str = "threshold"
    """``threshold`` (Rao–Kupper: a tie when the perceived logit difference is within tau) or
    ``davidson`` (the analysis's own model: ties with weight ``nu * sqrt(p_A p_B)``)."""
    davidson_nu: float = 0.5

    @property
    def beta(self) -> float:
        return (math.pi / math.sqrt(3)) / (math.sqrt(2) * self.perception_sd)

    def score(self, theta: float, rng: np.random.Generator, *, rounded: bool = True) -> float:
        perceived = theta + rng.normal(0.0, self.perception_sd)
        raw = 8.5 + self.score_spread * perceived + rng.normal(0.0, self.calibration_sd)
        return float(np.clip(round(raw * 2) / 2 if rounded else raw, 0.0, 10.0))

    def compare(self, theta_a: float, theta_b: float, rng: np.random.Generator) -> str:
        if self.tie_model == "davidson":
            a = math.exp(self.beta * theta_a + self.position_bias)
            b = math.exp(self.beta * theta_b)
            tie = self.davidson_nu * math.sqrt(a * b)
            u = rng.random() * (a + b + tie)
            return "A" if u < a else "B" if u < a + b else "tie"
        d = self.beta * (theta_a - theta_b) + self.position_bias + rng.logistic()
        return "A" if d > self.tie_threshold else "B" if d < -self.tie_threshold else "tie"

    def first_wins(self) -> float:
        """P(the first-shown of two equal essays wins a decisive verdict): the position bias on a
        scale every tie model shares."""
        if self.tie_model == "davidson":
            return float(expit(self.position_bias))
        win = float(expit(self.position_bias - self.tie_threshold))
        lose = float(expit(-self.position_bias - self.tie_threshold))
        return win / (win + lose)


@dataclass(frozen=True)
class FitResult:
    """What a tournament fit returns that the benchmark reads."""

    strengths: dict[str, float]
    position_bias: tuple[float, float, float]
    """(estimate, ci_low, ci_high) of gamma, 95%."""
    first_wins: tuple[float, float, float] | None = None
    """(estimate, ci_low, ci_high) of P(first-shown of two equal essays wins a decisive verdict)."""


def verdict_frame(rows: list[tuple[str, str, str, int]]) -> pl.DataFrame:
    """The project's verdict frame from ``(essay_a, essay_b, verdict, round)`` rows."""
    return pl.DataFrame(
        {
            "comparison_gen_id": [f"p_{i:06d}" for i in range(len(rows))],
            "essay_a": [r[0] for r in rows],
            "essay_b": [r[1] for r in rows],
            "judge": ["sim-judge"] * len(rows),
            "template_id": ["compare-overall"] * len(rows),
            "replicate": [1] * len(rows),
            "round": [r[3] for r in rows],
            "verdict": [r[2] for r in rows],
        },
        schema={"comparison_gen_id": pl.Utf8, "essay_a": pl.Utf8, "essay_b": pl.Utf8, "judge": pl.Utf8,
                "template_id": pl.Utf8, "replicate": pl.Int64, "round": pl.Int64, "verdict": pl.Utf8},
    )


def _nll_and_grad(params: np.ndarray, a: np.ndarray, b: np.ndarray, outcome: np.ndarray, n: int
                  ) -> tuple[float, np.ndarray]:
    """Penalised negative log-likelihood of the Rao–Kupper model with a position effect."""
    s, gamma, log_tau = params[:n], params[n], params[n + 1]
    tau = math.exp(log_tau)
    d = s[a] - s[b] + gamma
    su, sv = expit(d - tau), expit(d + tau)
    is_a, is_b, is_tie = outcome == 0, outcome == 1, outcome == 2
    p_tie = np.clip(sv - su, 1e-300, None)
    ll = (np.log(np.clip(su[is_a], 1e-300, None)).sum() + np.log(np.clip(1 - sv[is_b], 1e-300, None)).sum()
          + np.log(p_tie[is_tie]).sum())
    # d(log P)/dd and d(log P)/dtau per verdict
    dd = np.where(is_a, 1 - su, np.where(is_b, -sv, (sv * (1 - sv) - su * (1 - su)) / p_tie))
    dtau = np.where(is_a, -(1 - su), np.where(is_b, -sv, (sv * (1 - sv) + su * (1 - su)) / p_tie))
    grad = np.zeros_like(params)
    np.add.at(grad, a, dd)
    np.add.at(grad, b, -dd)
    grad[n] = dd.sum()
    grad[n + 1] = dtau.sum() * tau
    nll = -ll + RIDGE * float(s @ s)
    grad = -grad
    grad[:n] += 2 * RIDGE * s
    return float(nll), grad


def reference_fit(frame: pl.DataFrame) -> FitResult:
    """The benchmark's own reference Bradley–Terry fit (Rao–Kupper ties, position effect).

    Model: ``P(A) = F(s_A - s_B + gamma - tau)``, ``P(B) = F(s_B - s_A - gamma - tau)``, tie
    otherwise, ``F`` logistic (Rao & Kupper 1967). Penalised maximum likelihood (L-BFGS) with
    :data:`RIDGE`; the interval of ``gamma`` is Wald's, from the inverse of the numerical Hessian
    of the penalised log-likelihood at the optimum.
    """
    essays = sorted(set(frame["essay_a"]) | set(frame["essay_b"]))
    index = {e: k for k, e in enumerate(essays)}
    n = len(essays)
    a = np.array([index[e] for e in frame["essay_a"]])
    b = np.array([index[e] for e in frame["essay_b"]])
    outcome = np.array([{"A": 0, "B": 1, "tie": 2}[v] for v in frame["verdict"]])
    start = np.zeros(n + 2)
    start[n + 1] = math.log(0.2)
    result = minimize(_nll_and_grad, start, args=(a, b, outcome, n), jac=True, method="L-BFGS-B")
    x = result.x
    step = 1e-5
    hessian = np.empty((n + 2, n + 2))
    for k in range(n + 2):
        e = np.zeros(n + 2)
        e[k] = step
        hessian[k] = (_nll_and_grad(x + e, a, b, outcome, n)[1] - _nll_and_grad(x - e, a, b, outcome, n)[1]) / (2 * step)
    cov = np.linalg.inv((hessian + hessian.T) / 2)
    se = math.sqrt(max(cov[n, n], 0.0))
    gamma = float(x[n])
    return FitResult(
        strengths={e: float(x[index[e]]) for e in essays},
        position_bias=(gamma, gamma - 1.96 * se, gamma + 1.96 * se),
    )


def package_fit(frame: pl.DataFrame) -> FitResult:
    """The analysis package's fit (:func:`daydreaming_dagster.analysis.analyze_tournament`:
    Davidson ties, a first-shown effect, the pair bootstrap of ``daydream analyze``)."""
    from daydreaming_dagster.analysis import analyze_tournament

    found = analyze_tournament(frame, n_boot=PACKAGE_BOOTSTRAP, seed=0)
    assert found is not None
    pooled = found.pooled
    bias = pooled.position_bias
    return FitResult(
        strengths={s.essay_gen_id: s.strength for s in pooled.strengths},
        position_bias=(float(bias.estimate), float(bias.ci_low), float(bias.ci_high)),  # type: ignore[arg-type]
        first_wins=(float(bias.p_first_wins), float(bias.p_first_wins_ci_low),  # type: ignore[arg-type]
                    float(bias.p_first_wins_ci_high)),  # type: ignore[arg-type]
    )


PACKAGE_BOOTSTRAP = 200
FITS: dict[str, Callable[[pl.DataFrame], FitResult]] = {"reference": reference_fit, "package": package_fit}
FIT: Callable[[pl.DataFrame], FitResult] = package_fit
"""The fit every tournament arm uses (``--fit``)."""


def _metrics(estimate: dict[str, float], theta: dict[str, float], rng: np.random.Generator) -> tuple[float, float]:
    """Kendall's tau-b with the planted order and top-k recall (ties broken at random)."""
    essays = sorted(theta)
    tau = kendalltau([estimate[e] for e in essays], [theta[e] for e in essays]).statistic
    jitter = dict(zip(essays, rng.random(len(essays)), strict=True))
    top_est = sorted(essays, key=lambda e: (-estimate[e], jitter[e]))[:TOP_K]
    top_true = sorted(essays, key=lambda e: -theta[e])[:TOP_K]
    return float(tau), len(set(top_est) & set(top_true)) / TOP_K


def _absolute(theta: dict[str, float], judge: Judge, calls_per_essay: int, rng: np.random.Generator,
              *, rounded: bool) -> dict[str, float]:
    return {e: float(np.mean([judge.score(t, rng, rounded=rounded) for _ in range(calls_per_essay)]))
            for e, t in theta.items()}


def _random_pairs(essays: list[str], round_number: int, seed: int) -> list[tuple[str, str]]:
    order = sorted(essays)
    np.random.default_rng([seed, round_number, 7]).shuffle(order)
    return [(order[i], order[i + 1]) for i in range(0, len(order) - 1, 2)]


def _tournament(theta: dict[str, float], judge: Judge, rounds: int, rng: np.random.Generator, seed: int,
                *, swiss: bool) -> tuple[FitResult, int]:
    essays = sorted(theta)
    verdicts: list[Verdict] = []
    rows: list[tuple[str, str, str, int]] = []
    for r in range(1, rounds + 1):
        pairs = (swiss_pairings(essays, round_number=r, seed=seed, verdicts=verdicts) if swiss
                 else _random_pairs(essays, r, seed))
        for x, y in pairs:
            for a, b in ((x, y), (y, x)):
                v = judge.compare(theta[a], theta[b], rng)
                verdicts.append(Verdict(a, b, v))  # type: ignore[arg-type]
                rows.append((a, b, v, r))
    return FIT(verdict_frame(rows)), len(rows)


def run(essays: int, seeds: int, budgets: list[int], judge: Judge) -> dict[str, object]:
    """All arms at every budget over ``seeds`` seeds; returns the figures."""
    arms = ("absolute", "absolute (unrounded)", "swiss", "random pairs")
    results: dict[str, object] = {"essays": essays, "seeds": seeds, "judge": judge.__dict__ | {"beta": judge.beta},
                                  "budgets": {}}
    for budget in budgets:
        taus = {arm: [] for arm in arms}
        recalls = {arm: [] for arm in arms}
        calls = dict.fromkeys(arms, 0)
        gammas, covered, widths = [], [], []
        first, first_covered = [], []
        for seed in range(seeds):
            rng = np.random.default_rng([seed, budget])
            theta = {f"e{i:03d}": float(t) for i, t in enumerate(rng.normal(size=essays))}
            metric_rng = np.random.default_rng([seed, budget, 1])
            for arm in arms:
                if arm.startswith("absolute"):
                    estimate = _absolute(theta, judge, budget, rng, rounded=arm == "absolute")
                    calls[arm] += budget * essays
                else:
                    fit, n_calls = _tournament(theta, judge, budget, rng, seed, swiss=arm == "swiss")
                    estimate = fit.strengths
                    calls[arm] += n_calls
                    if arm == "swiss":
                        g, lo, hi = fit.position_bias
                        gammas.append(g)
                        covered.append(lo <= judge.position_bias <= hi)
                        widths.append(hi - lo)
                        if fit.first_wins is not None:
                            p, p_lo, p_hi = fit.first_wins
                            first.append(p)
                            first_covered.append(p_lo <= judge.first_wins() <= p_hi)
                tau, recall = _metrics(estimate, theta, metric_rng)
                taus[arm].append(tau)
                recalls[arm].append(recall)
        results["budgets"][budget] = {  # type: ignore[index]
            "calls_per_seed": {arm: calls[arm] / seeds for arm in arms},
            "kendall_tau": {arm: (float(np.mean(taus[arm])), float(np.std(taus[arm], ddof=1))) for arm in arms},
            "top5_recall": {arm: (float(np.mean(recalls[arm])), float(np.std(recalls[arm], ddof=1))) for arm in arms},
            "position_bias": {"planted": judge.position_bias, "mean_estimate": float(np.mean(gammas)),
                              "sd_estimate": float(np.std(gammas, ddof=1)), "coverage_95": float(np.mean(covered)),
                              "mean_ci_width": float(np.mean(widths))},
            "first_wins": None if not first else {
                "planted": judge.first_wins(), "mean_estimate": float(np.mean(first)),
                "coverage_95": float(np.mean(first_covered))},
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--essays", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budgets", default="3,5,8", help="calls per essay, comma-separated")
    parser.add_argument("--perception-sd", type=float, default=1.0)
    parser.add_argument("--score-spread", type=float, default=0.25)
    parser.add_argument("--calibration-sd", type=float, default=0.35)
    parser.add_argument("--position-bias", type=float, default=0.4)
    parser.add_argument("--tie-threshold", type=float, default=0.3)
    parser.add_argument("--tie-model", choices=("threshold", "davidson"), default="threshold",
                        help="how the simulated judge ties: threshold (Rao-Kupper) or davidson (the analysis's model)")
    parser.add_argument("--fit", choices=sorted(FITS), default="package",
                        help="package: the analysis's own fit (default); reference: this file's independent fit")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    global FIT
    FIT = FITS[args.fit]
    judge = Judge(args.perception_sd, args.score_spread, args.calibration_sd, args.position_bias,
                  args.tie_threshold, args.tie_model)
    budgets = [int(b) for b in args.budgets.split(",")]
    started = time.perf_counter()
    results = run(args.essays, args.seeds, budgets, judge)
    results["seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"fit: {args.fit}; {args.essays} essays, {args.seeds} seeds; judge: perception sd {judge.perception_sd}, "
          f"score spread {judge.score_spread}, calibration sd {judge.calibration_sd}, beta {judge.beta:.2f}, "
          f"position bias {judge.position_bias}, ties {judge.tie_model} (threshold {judge.tie_threshold})")
    for budget, figures in results["budgets"].items():  # type: ignore[union-attr]
        print(f"\n{budget} calls per essay ({figures['calls_per_seed']['swiss']:.0f} calls per arm and seed)")
        print(f"  {'arm':<22} {'Kendall tau':>16} {'top-5 recall':>16}")
        for arm, (tau_m, tau_sd) in figures["kendall_tau"].items():
            rec_m, rec_sd = figures["top5_recall"][arm]
            print(f"  {arm:<22} {tau_m:>8.3f} ± {tau_sd:.3f} {rec_m:>8.2f} ± {rec_sd:.2f}")
        pb = figures["position_bias"]
        print(f"  position bias (swiss fit): planted {pb['planted']:.2f}, estimate {pb['mean_estimate']:.3f} "
              f"± {pb['sd_estimate']:.3f}, 95% interval covers the planted value in "
              f"{pb['coverage_95']:.0%} of seeds (mean width {pb['mean_ci_width']:.2f})")
        fw = figures["first_wins"]
        if fw is not None:
            print(f"  P(first shown wins | equal, decisive): planted {fw['planted']:.3f}, estimate "
                  f"{fw['mean_estimate']:.3f}, 95% interval covers it in {fw['coverage_95']:.0%} of seeds")
    print(f"\n{results['seconds']} s")


if __name__ == "__main__":
    main()
