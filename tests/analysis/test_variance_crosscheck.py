"""The Type II ANOVA inside the variance components, checked against statsmodels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from daydreaming_dagster.analysis._variance import _anova


def test_type_ii_components_match_statsmodels_on_an_unbalanced_design() -> None:
    smf = pytest.importorskip("statsmodels.formula.api")
    from statsmodels.stats.anova import anova_lm

    rng = np.random.default_rng(5)
    n = 90
    a = rng.choice(["a0", "a1", "a2"], size=n, p=[0.5, 0.3, 0.2])
    # b depends on a: the design is unbalanced and the factors are correlated.
    b = np.where(rng.random(n) < np.where(a == "a0", 0.8, 0.3), "b0", "b1")
    y = 1.0 * (a == "a1") - 0.5 * (a == "a2") + 0.7 * (b == "b1") + rng.normal(0, 1, n)
    frame = pd.DataFrame({"y": y, "a": a, "b": b})
    table = anova_lm(smf.ols("y ~ C(a) + C(b)", data=frame).fit(), typ=2)
    ms_error = table.loc["Residual", "sum_sq"] / table.loc["Residual", "df"]
    expected = [(table.loc[f"C({f})", "sum_sq"] - table.loc[f"C({f})", "df"] * ms_error) / n for f in ("a", "b")]

    codes = [np.unique(a, return_inverse=True)[1], np.unique(b, return_inverse=True)[1]]
    got = _anova(y[None, :], np.ones((1, n)), np.zeros(1), codes)[0]
    assert got[:2] == pytest.approx(expected, rel=1e-9)
    assert got[2] == pytest.approx(ms_error, rel=1e-9)  # what remains between units (no noise term)


def test_spearman_matches_scipy_with_ties_and_missing_values() -> None:
    from scipy import stats

    from daydreaming_dagster.analysis._agreement import spearman

    rng = np.random.default_rng(2)
    a = rng.integers(0, 5, 40).astype(float)
    b = a + rng.integers(-2, 3, 40)
    a[[3, 7]] = np.nan
    b[[5]] = np.nan
    rho, n = spearman(a, b)
    keep = ~np.isnan(a) & ~np.isnan(b)
    assert n == 37
    assert rho == pytest.approx(stats.spearmanr(a[keep], b[keep]).statistic, abs=1e-12)
    assert spearman(np.array([1.0, 2.0]), np.array([2.0, 1.0])) == (None, 2)


def test_essay_intervals_match_an_ols_fit_of_essay_and_evaluator_effects() -> None:
    """The evaluator-adjusted essay means and intervals are those of ordinary least squares with
    essay dummies and sum-to-zero evaluator contrasts (statsmodels), with missing cells."""
    import polars as pl
    import statsmodels.api as sm

    from daydreaming_dagster.analysis import analyze_scores

    rng = np.random.default_rng(5)
    offsets = np.array([-2.0, 0.0, 1.0, 3.0])
    rows = []
    for e in range(12):
        quality = rng.normal(5, 1)
        for j, offset in enumerate(offsets):
            if rng.random() < 0.35 and j != 0:
                continue
            rows.append((f"e{e:02d}", f"j{j}", quality + offset + rng.normal(0, 0.5)))
    table = pl.DataFrame(rows, schema=["essay_gen_id", "evaluator", "score"], orient="row")
    essays = sorted(set(table["essay_gen_id"]))
    x = np.zeros((table.height, len(essays) + 3))
    x[np.arange(table.height), [essays.index(e) for e in table["essay_gen_id"]]] = 1.0
    contrast = np.vstack([np.eye(3), -np.ones(3)])
    x[:, len(essays):] = contrast[[int(j[1]) for j in table["evaluator"]]]
    ols = sm.OLS(table["score"].to_numpy(), x).fit()
    low, high = ols.conf_int(0.05)[: len(essays)].T
    got = {e.essay_gen_id: e for e in analyze_scores(table, n_boot=10).essays}
    for i, essay in enumerate(essays):
        assert got[essay].mean == pytest.approx(ols.params[i], rel=1e-10)
        assert got[essay].ci_low == pytest.approx(low[i], rel=1e-10)
        assert got[essay].ci_high == pytest.approx(high[i], rel=1e-10)
