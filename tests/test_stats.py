"""Estimators checked against statsmodels / scipy on the same data and against values
derived by hand."""

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats as sps
from statsmodels.stats import proportion as smp
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from experiments.stats import (
    benjamini_hochberg,
    lift,
    mde,
    rate_interval,
    sequential_halfwidth,
    srm_p_value,
)

RNG = np.random.default_rng(7)


def test_mean_lift_matches_statsmodels_welch():
    c = RNG.gamma(2.0, 10.0, 800)
    t = RNG.gamma(2.0, 11.5, 1200)
    got = lift(c, t)
    cm = CompareMeans(DescrStatsW(t), DescrStatsW(c))
    lo, hi = cm.tconfint_diff(alpha=0.05, usevar="unequal")
    _, p, _ = cm.ttest_ind(usevar="unequal")
    assert got.abs_lift == pytest.approx(t.mean() - c.mean())
    assert (got.abs_ci_low, got.abs_ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert got.p_value == pytest.approx(p)
    assert got.p_value == pytest.approx(sps.ttest_ind(t, c, equal_var=False).pvalue)


def test_proportion_lift_matches_statsmodels_wald():
    c = (RNG.random(5000) < 0.10).astype(float)
    t = (RNG.random(9000) < 0.12).astype(float)
    got = lift(c, t, metric="proportion")
    lo, hi = smp.confint_proportions_2indep(
        t.sum(), t.size, c.sum(), c.size, method="wald", compare="diff"
    )
    _, p = smp.test_proportions_2indep(
        t.sum(), t.size, c.sum(), c.size, method="wald", compare="diff"
    )
    assert (got.abs_ci_low, got.abs_ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert got.p_value == pytest.approx(p)


def test_relative_lift_delta_method_by_hand():
    # control 10 units: mean 2, var (ddof 1) = 4.444...; treatment 10 units: mean 3
    c = np.array([0, 1, 1, 2, 2, 2, 3, 3, 4, 2], dtype=float)
    t = np.array([1, 2, 2, 3, 3, 3, 4, 4, 5, 3], dtype=float)
    s2c, s2t = c.var(ddof=1), t.var(ddof=1)  # both 1.3333
    assert s2c == pytest.approx(4 / 3) and s2t == pytest.approx(4 / 3)
    # Var = s_T^2/(n_T mu_C^2) + s_C^2 mu_T^2/(n_C mu_C^4) = (4/3)/40 + (4/3)*9/160 = 0.108333
    var = (4 / 3) / 40 + (4 / 3) * 9 / 160
    assert var == pytest.approx(0.1083333, rel=1e-6)
    got = lift(c, t)
    assert got.rel_lift == pytest.approx(0.5)
    half = 1.959963984540054 * math.sqrt(var)
    assert (got.rel_ci_low, got.rel_ci_high) == (
        pytest.approx(0.5 - half),
        pytest.approx(0.5 + half),
    )


def test_cuped_theta_matches_ols_and_shrinks_the_interval():
    x_c, x_t = RNG.gamma(2, 20, 3000), RNG.gamma(2, 20, 3000)
    y_c = 0.6 * x_c + RNG.normal(0, 8, 3000)
    y_t = 0.6 * x_t + 3 + RNG.normal(0, 8, 3000)
    got = lift(y_c, y_t, control_covariate=x_c, treatment_covariate=x_t)
    x, y = np.concatenate([x_c, x_t]), np.concatenate([y_c, y_t])
    slope = sm.OLS(y, sm.add_constant(x)).fit().params[1]
    assert got.theta == pytest.approx(slope)
    width = got.abs_ci_high - got.abs_ci_low
    cuped_width = got.cuped_abs_ci_high - got.cuped_abs_ci_low
    rho = np.corrcoef(y, x)[0, 1]
    assert cuped_width / width == pytest.approx(math.sqrt(1 - rho**2), rel=0.05)
    # the adjusted difference equals the difference of residual means by hand
    adj_c = y_c - slope * (x_c - x.mean())
    adj_t = y_t - slope * (x_t - x.mean())
    assert got.cuped_abs_lift == pytest.approx(adj_t.mean() - adj_c.mean())
    assert got.cuped_abs_ci_low < 3 < got.cuped_abs_ci_high


def test_srm_matches_scipy_chisquare_and_by_hand():
    counts, weights = [9_100, 900, 480], [0.855, 0.095, 0.05]
    total = sum(counts)
    expected = [w * total for w in weights]
    assert srm_p_value(counts, weights) == pytest.approx(
        sps.chisquare(counts, f_exp=expected).pvalue
    )
    # 50/50 with 520 vs 480: chi2 = 2 * 20^2 / 500 = 1.6, p = P(chi2_1 > 1.6) = 0.20590
    assert srm_p_value([520, 480], [1, 1]) == pytest.approx(0.2059032, rel=1e-5)


def test_mde_matches_statsmodels_power():
    n, h, p = 20_000, 0.1, 0.08
    got = mde(n, h, baseline_rate=p)
    d = NormalIndPower().solve_power(
        effect_size=None, nobs1=n * (1 - h), ratio=h / (1 - h), alpha=0.05, power=0.8
    )
    assert got == pytest.approx(d * math.sqrt(p * (1 - p)), rel=1e-4)
    # by hand: (1.95996 + 0.84162) * 10 * sqrt(1/900 + 1/100) = 2.80158 * 10 * 0.105409
    assert mde(1000, 0.1, sd=10) == pytest.approx(2.95313, rel=1e-4)


def test_benjamini_hochberg_matches_statsmodels():
    p = np.array([0.01, 0.04, 0.03, 0.20, 0.002, np.nan, 0.5])
    got = benjamini_hochberg(p)
    ok = ~np.isnan(p)
    assert np.allclose(got[ok], multipletests(p[ok], method="fdr_bh")[1])
    assert np.isnan(got[5])


@pytest.mark.parametrize(
    ("control", "treatment", "note"),
    [
        ([], [1.0, 2.0], "no units in the control arm"),
        ([1.0, 2.0], [], "no units in the treatment arm"),
        ([0.0] * 50, [0.0] * 60, "no variation in the outcome"),
        ([0.0, 0.0, 0.0], [1.0, 2.0, 0.0], "the control mean is zero"),
        ([5.0], [1.0, 2.0], "fewer than 2 units"),
    ],
)
def test_degenerate_inputs_explain_themselves(control, treatment, note):
    got = lift(control, treatment)
    assert note in got.note


def test_missing_pre_period_skips_cuped_with_a_note():
    got = lift([1.0, 2.0, 3.0], [2.0, 3.0, 4.0], control_covariate=[1.0, 1.0, 1.0])
    assert "one arm only" in got.note and math.isnan(got.cuped_abs_lift)
    flat = lift([1.0, 2.0], [2.0, 3.0], control_covariate=[5.0, 5.0],
                treatment_covariate=[5.0, 5.0])  # fmt: skip
    assert "does not vary" in flat.note
    with pytest.raises(ValueError, match="NaN"):
        lift([1.0, np.nan], [1.0, 2.0])


def test_sequential_interval_by_hand_from_the_published_formula():
    """Waudby-Smith et al. 2023 eq. 9 with rho from eq. 161, worked on fixed counts:
    control 100/1000, treatment 120/1000, alpha 0.05, tuning N = 5,000.
      rho^2 = (-2 ln 0.05 + ln(-2 ln 0.05 + 1)) / 5000 = (5.991465 + 1.944692) / 5000
            = 0.00158723
      n = 2000, n rho^2 + 1 = 4.174462
      SE^2 = 0.1 * 0.9 / 1000 + 0.12 * 0.88 / 1000 = 0.0001956; sigma^2 = n SE^2 = 0.3912
      halfwidth = sqrt(0.3912) sqrt(2 * 4.174462 * ln(sqrt(4.174462) / 0.05) / (2000^2 rho^2))
                = 0.625460 * sqrt(8.348924 * 3.710206 / 6348.924) = 0.043688
    Relative: Var(r) = 0.12 * 0.88 / (1000 * 0.01) + 0.09 * 0.0144 / (1000 * 0.0001)
            = 0.01056 + 0.01296 = 0.02352; halfwidth = sqrt(0.02352 * 2000) * 0.069849 = 0.479070
    """
    c = np.r_[np.ones(100), np.zeros(900)]
    t = np.r_[np.ones(120), np.zeros(880)]
    got = lift(c, t, metric="proportion", tuning=5000)
    assert got.abs_lift == pytest.approx(0.02)
    assert got.seq_abs_ci_low == pytest.approx(0.02 - 0.043688, abs=2e-6)
    assert got.seq_abs_ci_high == pytest.approx(0.02 + 0.043688, abs=2e-6)
    assert got.seq_rel_ci_low == pytest.approx(0.2 - 0.479070, abs=2e-6)
    assert got.seq_rel_ci_high == pytest.approx(0.2 + 0.479070, abs=2e-6)
    # wider than the fixed-horizon interval (1.96 SE = 0.027411) at every look
    assert got.abs_ci_high - got.abs_lift == pytest.approx(0.027411, abs=2e-6)
    assert float(sequential_halfwidth(0.3912, 2000, tuning=5000)) == pytest.approx(
        0.043688, abs=2e-6
    )
    # tightest near the tuning size: a sequence tuned at 2,000 is narrower at n = 2,000
    assert float(sequential_halfwidth(0.3912, 2000, tuning=2000)) < 0.043688
    with pytest.raises(ValueError, match="tuning"):
        sequential_halfwidth(0.3912, 2000, tuning=0)


def test_daily_looks_at_an_a_a_test_fool_the_fixed_test_not_the_sequential_one():
    """1,000 A/A worlds (both arms convert at 10%), 100 new units per arm each day, looked at
    after each of 30 days. Declaring an effect at the first look with p < 0.05 happens in far
    more than 5% of worlds; declaring it when the always-valid interval first excludes zero
    happens in at most 5%."""
    rng = np.random.default_rng(2026)
    worlds, days, per_day = 1000, 30, 100
    daily = rng.binomial(per_day, 0.10, size=(2, worlds, days))
    conversions = daily.cumsum(axis=2)
    n_arm = per_day * np.arange(1, days + 1)
    p_c, p_t = conversions[0] / n_arm, conversions[1] / n_arm
    diff = p_t - p_c
    se = np.sqrt(p_c * (1 - p_c) / n_arm + p_t * (1 - p_t) / n_arm)
    fixed_hit = (2 * sps.norm.sf(np.abs(diff) / se) < 0.05).any(axis=1)
    half = sequential_halfwidth(se**2 * 2 * n_arm, 2 * n_arm, tuning=5000)
    sequential_hit = (np.abs(diff) > half).any(axis=1)
    fixed_rate, sequential_rate = fixed_hit.mean(), sequential_hit.mean()
    print(f"A/A, {worlds} worlds x {days} looks: fixed-horizon declares an effect in "
          f"{fixed_rate:.1%}, the sequential interval in {sequential_rate:.1%}")  # fmt: skip
    assert fixed_rate > 0.15
    assert sequential_rate <= 0.05
    # the last look alone is a fair fixed-horizon test: about 5%
    assert 0.03 <= (2 * sps.norm.sf(np.abs(diff[:, -1]) / se[:, -1]) < 0.05).mean() <= 0.07


@pytest.mark.parametrize(("hits", "n"), [(30, 1000), (0, 50), (3, 40), (50, 50), (480, 20000)])
def test_a_rates_fixed_interval_is_statsmodels_wilson(hits, n):
    got = rate_interval(hits, n)
    low, high = smp.proportion_confint(hits, n, alpha=0.05, method="wilson")
    assert got.rate == pytest.approx(hits / n)
    assert (got.ci_low, got.ci_high) == (pytest.approx(low, abs=1e-12), pytest.approx(high))


def test_a_rates_always_valid_interval_by_hand():
    """30 clicks of 1,000 texts, tuning N = 5,000: rho^2 = 0.00158723 (as above),
    q = 31/1002 = 0.0309381, q(1-q) = 0.0299810, n rho^2 + 1 = 2.587231,
    halfwidth = sqrt(0.0299810) sqrt(2 * 2.587231 * ln(sqrt(2.587231) / 0.05) / (1000^2 rho^2))
              = 0.173150 * sqrt(5.174462 * 3.471026 / 1587.231) = 0.018419."""
    got = rate_interval(30, 1000, tuning=5000)
    assert got.seq_ci_low == pytest.approx(0.03 - 0.018419, abs=2e-6)
    assert got.seq_ci_high == pytest.approx(0.03 + 0.018419, abs=2e-6)
    none_yet = rate_interval(0, 200)  # no click yet is not a certainty of never
    assert none_yet.seq_ci_low == 0 and none_yet.seq_ci_high > 0.01
    assert np.isnan(rate_interval(0, 0).rate)
    with pytest.raises(ValueError, match="hits <= n"):
        rate_interval(5, 4)
