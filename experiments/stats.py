"""Estimators for holdout experiments. Pure numpy/scipy; the public API is a contract that
analysts call from notebooks too.

Notation: control C and treatment T with n_C, n_T units, means mu_C, mu_T and sample
variances s_C^2, s_T^2 (ddof=1; for ``metric="proportion"`` the Bernoulli variance
p(1-p), as in the Wald interval).

Absolute lift (``lift``)
    d = mu_T - mu_C, SE = sqrt(s_T^2/n_T + s_C^2/n_C).
    mean: Welch t with Welch-Satterthwaite degrees of freedom
        df = SE^4 / ((s_T^2/n_T)^2/(n_T-1) + (s_C^2/n_C)^2/(n_C-1)),
        CI = d +- t_{1-alpha/2, df} SE, p = 2 (1 - F_t(|d|/SE; df)).
    proportion: the same with z_{1-alpha/2} (unpooled Wald), p = 2 (1 - Phi(|d|/SE)).
Relative lift (delta method)
    r = mu_T/mu_C - 1,
    Var(r) = s_T^2/(n_T mu_C^2) + s_C^2 mu_T^2/(n_C mu_C^4),  CI = r +- z_{1-alpha/2} sqrt(Var).
CUPED (when pre-period covariates X are given for both arms)
    theta = Cov(Y, X) / Var(X) over both arms pooled; Y' = Y - theta (X - mean(X));
    the absolute and relative lifts above are computed on Y' (``cuped_*``); the variance
    shrinks by the factor (1 - rho^2), rho = Corr(Y, X).
Always-valid intervals (``sequential_halfwidth``; ``seq_*`` in ``Lift``)
    Asymptotic confidence sequences (Waudby-Smith et al. 2023, eq. 9 with rho from eq. 161,
    the form GrowthBook's gbstats uses): with N the tuning sample size (where the sequence is
    tightest), rho^2 = (-2 ln alpha + ln(-2 ln alpha + 1)) / N and n = n_C + n_T,
        halfwidth = sigma sqrt(2 (n rho^2 + 1) ln(sqrt(n rho^2 + 1) / alpha) / (n rho)^2),
    where sigma^2 = n SE^2 is the per-unit variance of the estimate (SE of the absolute lift,
    or the delta-method SE of the relative lift). The interval estimate +- halfwidth holds
    at every look at once with probability 1 - alpha, so results recomputed daily may be
    acted on whenever it excludes zero; the fixed-horizon interval only at the planned end.
Sample-ratio mismatch (``srm_p_value``)
    Pearson chi-square of the observed arm counts against the configured split,
    df = arms - 1; results with p < 0.001 are flagged untrustworthy.
Minimum detectable effect (``mde``)
    MDE = (z_{1-alpha/2} + z_{power}) sigma sqrt(1/n_T + 1/n_C), with n_C = n h,
    n_T = n (1-h) and sigma = sqrt(p(1-p)) for a baseline rate p, else the given sd.
A rate on its own (``rate_interval``: a click-through rate)
    p = hits / n. Fixed horizon: the Wilson score interval
        (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n),
    which keeps its coverage near 0, where rates like clicks live and the Wald interval does
    not. Always valid: p +- the confidence-sequence halfwidth above with sigma^2 = q(1-q),
    q = (hits + 1)/(n + 2) (so no clicks yet is not a zero-width interval), clipped to
    [0, 1].
Multiple testing (``benjamini_hochberg``)
    q_(i) = min_{j>=i} p_(j) m / j over the sorted p-values, capped at 1.

Degenerate inputs never raise: an empty arm, no variation, a zero control mean or a missing
pre-period give NaN for what cannot be computed and a plain-words ``note``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import special, stats

SRM_ALPHA = 0.001
SEQUENTIAL_TUNING = 5000  # N of the confidence sequences: the sample size they are tightest at

NAN = float("nan")


@dataclass(frozen=True)
class Lift:
    metric: str
    n_control: int
    n_treatment: int
    control_mean: float
    treatment_mean: float
    abs_lift: float
    abs_ci_low: float
    abs_ci_high: float
    rel_lift: float
    rel_ci_low: float
    rel_ci_high: float
    p_value: float
    cuped_abs_lift: float = NAN
    cuped_abs_ci_low: float = NAN
    cuped_abs_ci_high: float = NAN
    cuped_rel_lift: float = NAN
    cuped_rel_ci_low: float = NAN
    cuped_rel_ci_high: float = NAN
    cuped_p_value: float = NAN
    theta: float = NAN
    seq_abs_ci_low: float = NAN
    seq_abs_ci_high: float = NAN
    seq_rel_ci_low: float = NAN
    seq_rel_ci_high: float = NAN
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def note(self) -> str:
        return "; ".join(self.notes)


@functools.cache
def _z(alpha: float) -> float:
    """The two-sided normal quantile z_(1 - alpha/2)."""
    return float(stats.norm.ppf(1 - alpha / 2))


def _clean(values, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=float).ravel()
    if np.isnan(a).any():
        raise ValueError(f"{name} holds NaN values; pass one number per unit")
    return a


def sequential_halfwidth(
    per_unit_variance, n, *, tuning: float = SEQUENTIAL_TUNING, alpha: float = 0.05
):
    """Half-width of the always-valid interval after n units (module docstring); accepts
    numpy arrays for many looks at once."""
    if tuning <= 0:
        raise ValueError("the tuning sample size must be positive")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning
    n = np.asarray(n, dtype=float)
    spread = n * rho2 + 1
    return np.sqrt(per_unit_variance) * np.sqrt(
        2 * spread * np.log(np.sqrt(spread) / alpha) / (n * n * rho2)
    )


def _diff_and_ratio(yc, yt, metric: str, alpha: float,
                    tuning: float = SEQUENTIAL_TUNING) -> tuple[tuple, list[str]]:  # fmt: skip
    """((mu_C, mu_T, d, lo, hi, r, r_lo, r_hi, p, seq_lo, seq_hi, seq_r_lo, seq_r_hi), notes)
    for one outcome."""
    notes: list[str] = []
    n_c, n_t = yc.size, yt.size
    if n_c == 0 or n_t == 0:
        arm = "control" if n_c == 0 else "treatment"
        notes.append(f"no units in the {arm} arm: nothing to compare")
        mu_c = float(yc.mean()) if n_c else NAN
        mu_t = float(yt.mean()) if n_t else NAN
        return (mu_c, mu_t, *[NAN] * 11), notes
    mu_c, mu_t = float(yc.mean()), float(yt.mean())
    if metric == "proportion":
        if ((yc != 0) & (yc != 1)).any() or ((yt != 0) & (yt != 1)).any():
            raise ValueError("metric='proportion' needs 0/1 outcomes")
        v_c, v_t = mu_c * (1 - mu_c), mu_t * (1 - mu_t)
    else:
        v_c = float(yc.var(ddof=1)) if n_c > 1 else NAN
        v_t = float(yt.var(ddof=1)) if n_t > 1 else NAN
        if n_c < 2 or n_t < 2:
            notes.append("fewer than 2 units in an arm: no variance, no interval")
    d = mu_t - mu_c
    a_c, a_t = v_c / n_c, v_t / n_t
    se = math.sqrt(a_c + a_t) if not (math.isnan(a_c) or math.isnan(a_t)) else NAN
    z = _z(alpha)
    if math.isnan(se):
        lo = hi = p = NAN
    elif se == 0:
        notes.append("no variation in the outcome: the interval is a point")
        lo = hi = d
        p = 1.0 if d == 0 else 0.0
    elif metric == "proportion":
        lo, hi = d - z * se, d + z * se
        p = math.erfc(abs(d) / se / math.sqrt(2))  # 2 * (1 - Phi(|d| / se))
    else:
        # scipy.special's Student t functions: what stats.t.ppf and stats.t.sf compute,
        # without the distribution machinery's overhead (called per segment and metric)
        df = se**4 / (a_t**2 / (n_t - 1) + a_c**2 / (n_c - 1))
        q = float(special.stdtrit(df, 1 - alpha / 2))
        lo, hi = d - q * se, d + q * se
        p = float(2 * special.stdtr(df, -abs(d) / se))
    n = n_c + n_t
    seq_half = float(sequential_halfwidth(se * se * n, n, tuning=tuning, alpha=alpha))
    if mu_c == 0:
        notes.append("the control mean is zero: relative lift is undefined")
        r = r_lo = r_hi = seq_r_half = NAN
    else:
        r = mu_t / mu_c - 1
        var_r = v_t / (n_t * mu_c**2) + v_c * mu_t**2 / (n_c * mu_c**4)
        half = z * math.sqrt(var_r) if not math.isnan(var_r) else NAN
        r_lo, r_hi = r - half, r + half
        seq_r_half = float(sequential_halfwidth(var_r * n, n, tuning=tuning, alpha=alpha))
    return (mu_c, mu_t, d, lo, hi, r, r_lo, r_hi, p, d - seq_half, d + seq_half,
            r - seq_r_half, r + seq_r_half), notes  # fmt: skip


def lift(
    control,
    treatment,
    *,
    metric: str = "mean",
    alpha: float = 0.05,
    control_covariate=None,
    treatment_covariate=None,
    tuning: float = SEQUENTIAL_TUNING,
) -> Lift:
    """Absolute and relative lift of treatment over control, with CUPED when pre-period
    covariates are given for both arms and always-valid intervals tuned at ``tuning`` units
    (formulas in the module docstring)."""
    if metric not in ("mean", "proportion"):
        raise ValueError("metric must be 'mean' or 'proportion'")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")
    yc, yt = _clean(control, "control"), _clean(treatment, "treatment")
    base, notes = _diff_and_ratio(yc, yt, metric, alpha, tuning)
    out = dict(
        metric=metric, n_control=int(yc.size), n_treatment=int(yt.size),
        control_mean=base[0], treatment_mean=base[1], abs_lift=base[2], abs_ci_low=base[3],
        abs_ci_high=base[4], rel_lift=base[5], rel_ci_low=base[6], rel_ci_high=base[7],
        p_value=base[8], seq_abs_ci_low=base[9], seq_abs_ci_high=base[10],
        seq_rel_ci_low=base[11], seq_rel_ci_high=base[12],
    )  # fmt: skip
    if control_covariate is None or treatment_covariate is None:
        if control_covariate is not None or treatment_covariate is not None:
            notes.append("pre-period given for one arm only: no CUPED")
        return Lift(**out, notes=tuple(notes))
    xc, xt = (
        _clean(control_covariate, "control_covariate"),
        _clean(treatment_covariate, "treatment_covariate"),
    )
    if xc.size != yc.size or xt.size != yt.size:
        raise ValueError("each covariate needs one value per unit of its arm")
    x, y = np.concatenate([xc, xt]), np.concatenate([yc, yt])
    var_x = float(x.var(ddof=1)) if x.size > 1 else 0.0
    if var_x == 0:
        notes.append("the pre-period does not vary: CUPED adds nothing")
        return Lift(**out, notes=tuple(notes))
    theta = float(np.cov(y, x, ddof=1)[0, 1] / var_x)
    mean_x = float(x.mean())
    adjusted, _ = _diff_and_ratio(
        yc - theta * (xc - mean_x), yt - theta * (xt - mean_x), "mean", alpha, tuning
    )
    out.update(
        cuped_abs_lift=adjusted[2], cuped_abs_ci_low=adjusted[3], cuped_abs_ci_high=adjusted[4],
        cuped_rel_lift=adjusted[5], cuped_rel_ci_low=adjusted[6], cuped_rel_ci_high=adjusted[7],
        cuped_p_value=adjusted[8], theta=theta,
    )  # fmt: skip
    return Lift(**out, notes=tuple(notes))


@dataclass(frozen=True)
class Rate:
    hits: int
    n: int
    rate: float
    ci_low: float
    ci_high: float
    seq_ci_low: float
    seq_ci_high: float


def rate_interval(hits: int, n: int, *, alpha: float = 0.05,
                  tuning: float = SEQUENTIAL_TUNING) -> Rate:  # fmt: skip
    """A rate with its Wilson interval and its always-valid interval (module docstring);
    NaN throughout when n is 0."""
    if hits < 0 or n < 0 or hits > n:
        raise ValueError(f"need 0 <= hits <= n, got {hits} of {n}")
    if n == 0:
        return Rate(hits, n, NAN, NAN, NAN, NAN, NAN)
    p, z = hits / n, _z(alpha)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    q = (hits + 1) / (n + 2)
    seq = float(sequential_halfwidth(q * (1 - q), n, tuning=tuning, alpha=alpha))
    return Rate(hits, n, p, max(0.0, centre - half), min(1.0, centre + half),
                max(0.0, p - seq), min(1.0, p + seq))  # fmt: skip


def srm_p_value(counts, weights) -> float:
    """Chi-square p-value of observed arm counts against the configured split."""
    obs = np.asarray(counts, dtype=float)
    w = np.asarray(weights, dtype=float)
    if obs.shape != w.shape or obs.size < 2:
        raise ValueError("counts and weights need one value per arm, at least two arms")
    if (w <= 0).any() or (obs < 0).any():
        raise ValueError("weights must be > 0 and counts >= 0")
    total = obs.sum()
    if total == 0:
        return NAN
    expected = w / w.sum() * total
    chi2 = float(((obs - expected) ** 2 / expected).sum())
    return float(stats.chi2.sf(chi2, obs.size - 1))


def mde(
    n_total: int,
    holdout_share: float,
    *,
    baseline_rate: float | None = None,
    sd: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float:
    """The smallest absolute effect a two-sided test detects with this power."""
    if not 0 < holdout_share < 1:
        raise ValueError("holdout_share must be between 0 and 1")
    if (baseline_rate is None) == (sd is None):
        raise ValueError("give exactly one of baseline_rate or sd")
    sigma = math.sqrt(baseline_rate * (1 - baseline_rate)) if baseline_rate is not None else sd
    n_c, n_t = n_total * holdout_share, n_total * (1 - holdout_share)
    if n_c <= 0 or n_t <= 0:
        return NAN
    z = _z(alpha) + _z(2 * (1 - power))  # z_(1 - alpha/2) + z_power
    return float(z * sigma * math.sqrt(1 / n_t + 1 / n_c))


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    order = np.argsort(p[ok])
    ranked = p[ok][order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    valid = out[ok]
    valid[order] = q
    out[ok] = valid
    return out
