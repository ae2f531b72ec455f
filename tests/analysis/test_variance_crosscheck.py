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
