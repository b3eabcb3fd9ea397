"""Qini curves: how much incremental outcome a ranking by predicted uplift finds, measured on
randomised units (treated and control drawn from one audience).

For the top k units by score, Q(k) = Y_T(k) - Y_C(k) N_T(k) / N_C(k): the treated units'
outcome minus the control units' outcome scaled to as many units (Radcliffe 2007). Ties in
the score are one step. The Qini coefficient here is the area between the curve and the
random ranking's straight line to Q(N), divided by N squared: in outcome units per unit,
what ranking by the score adds on average over every cut-off (comparable with Q(N) / N, the
incremental outcome per unit of treating everyone). Intervals are percentile bootstraps that
resample within each arm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Qini:
    units: np.ndarray  # k at each step, from 0 to N
    curve: np.ndarray  # Q(k)
    coefficient: float
    ci_low: float = float("nan")
    ci_high: float = float("nan")


def qini_curve(score, treated, outcome) -> tuple[np.ndarray, np.ndarray]:
    """(k, Q(k)) at k = 0 and after each distinct score, highest score first."""
    score, outcome = np.asarray(score, float), np.asarray(outcome, float)
    treated = np.asarray(treated, bool)
    order = np.argsort(-score, kind="stable")
    s, t, y = score[order], treated[order], outcome[order]
    ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    n_t = np.cumsum(t)[ends]
    n_c = (ends + 1) - n_t
    y_t = np.cumsum(np.where(t, y, 0.0))[ends]
    y_c = np.cumsum(np.where(t, 0.0, y))[ends]
    scaled = np.divide(y_c * n_t, n_c, out=np.zeros(len(ends)), where=n_c > 0)
    return np.r_[0, ends + 1], np.r_[0.0, y_t - scaled]


def qini_coefficient(units: np.ndarray, curve: np.ndarray) -> float:
    """Area between the curve and the random line to its end point, over N squared."""
    n = units[-1]
    if n == 0:
        return float("nan")
    random_line = curve[-1] * units / n
    return float(np.trapezoid(curve - random_line, units) / n**2)


def qini(score, treated, outcome, *, bootstrap: int = 200, seed: int = 0) -> Qini:
    """The curve, its coefficient and a 95% percentile-bootstrap interval of the coefficient
    (``bootstrap`` resamples drawn within each arm; 0 for none)."""
    score, outcome = np.asarray(score, float), np.asarray(outcome, float)
    treated = np.asarray(treated, bool)
    units, curve = qini_curve(score, treated, outcome)
    coefficient = qini_coefficient(units, curve)
    if not bootstrap or treated.all() or not treated.any():
        return Qini(units, curve, coefficient)
    rng = np.random.default_rng(seed)
    arms = [np.flatnonzero(treated), np.flatnonzero(~treated)]
    draws = np.empty(bootstrap)
    for i in range(bootstrap):
        pick = np.concatenate([rng.choice(arm, len(arm)) for arm in arms])
        draws[i] = qini_coefficient(*qini_curve(score[pick], treated[pick], outcome[pick]))
    low, high = np.percentile(draws, [2.5, 97.5])
    return Qini(units, curve, coefficient, float(low), float(high))
