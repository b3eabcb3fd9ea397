"""Predicted customer value: BG/NBD for purchases and survival, Gamma-Gamma for order value.

Fader, Hardie and Lee, "Counting your customers the easy way" (2005) and "RFM and CLV" (2005),
with the notation of their papers: per customer the repeat purchases ``x``, the time of the last
purchase ``t_x`` and the age ``T`` (from the first purchase), in any one time unit, and for
Gamma-Gamma the mean repeat purchase value ``m``.

Every fit takes sufficient statistics with a weight: customers who share a history are one
row, so a million customers with a few hundred thousand distinct histories fit in seconds.
Parameters are fitted on their logarithms by maximum likelihood (L-BFGS with the analytic
gradient).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import digamma, gammaln, hyp2f1

# mean log-likelihood per customer, per log-parameter: flatter than this is a maximum
GRADIENT_TOLERANCE = 1e-5


class FitError(ValueError):
    """The data cannot identify the model (too few customers, or no repeat purchases)."""


@dataclass(frozen=True)
class BetaGeo:
    """BG/NBD: purchase rate ~ Gamma(r, alpha), dropout probability ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = float("nan")
    customers: float = 0.0
    converged: bool = True


@dataclass(frozen=True)
class GammaGamma:
    """Gamma-Gamma: spend per purchase ~ Gamma(p, nu), nu ~ Gamma(q, v)."""

    p: float
    q: float
    v: float
    log_likelihood: float = float("nan")
    customers: float = 0.0
    converged: bool = True


def _as_arrays(*columns) -> list[np.ndarray]:
    return [np.asarray(c, dtype=float) for c in columns]


def _weights(weights, n: int) -> np.ndarray:
    return np.ones(n) if weights is None else np.asarray(weights, dtype=float)


def beta_geo_log_likelihood(params, x, t_x, T) -> tuple[np.ndarray, np.ndarray]:
    """Each history's log-likelihood and its gradient in (log r, log alpha, log a, log b)."""
    r, alpha, a, b = params
    x, t_x, T = _as_arrays(x, t_x, T)
    repeat = x > 0
    # L = A1 * A2 * [ (alpha+T)^-(r+x) + [x>0] a/(b+x-1) (alpha+t_x)^-(r+x) ]
    log_a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    log_a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    log_alive = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_dropped = np.where(
            repeat, np.log(a) - np.log(b + x - 1) - (r + x) * np.log(alpha + t_x), -np.inf
        )
    log_sum = np.logaddexp(log_alive, log_dropped)
    share = np.exp(log_dropped - log_sum)  # the dropped term's share of the bracket
    ll = log_a1 + log_a2 + log_sum
    d_r = (
        digamma(r + x) - digamma(r) + np.log(alpha)
        - (1 - share) * np.log(alpha + T) - share * np.where(repeat, np.log(alpha + t_x), 0)
    )  # fmt: skip
    d_alpha = (
        r / alpha
        - (1 - share) * (r + x) / (alpha + T)
        - share * np.where(repeat, (r + x) / (alpha + t_x), 0)
    )
    d_a = digamma(a + b) - digamma(a + b + x) + share / a
    with np.errstate(divide="ignore", invalid="ignore"):
        d_b = (
            digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x)
            - share * np.where(repeat, 1 / (b + x - 1), 0)
        )  # fmt: skip
    grad = np.stack([d_r * r, d_alpha * alpha, d_a * a, d_b * b])  # chain rule to log scale
    return ll, grad


def fit_beta_geo(x, t_x, T, weights=None) -> BetaGeo:
    """Maximum-likelihood BG/NBD from histories (x, t_x, T), each counted ``weights`` times."""
    x, t_x, T = _as_arrays(x, t_x, T)
    w = _weights(weights, len(x))
    if w.sum() < 10 or not (w * (x > 0)).any():
        raise FitError("BG/NBD needs at least 10 customers and some repeat purchases")
    if np.any((t_x > T) | (t_x < 0) | (x < 0) | ((x == 0) & (t_x != 0))):
        raise FitError("histories need 0 <= t_x <= T, x >= 0, and t_x = 0 when x = 0")
    total = w.sum()

    def objective(theta):
        ll, grad = beta_geo_log_likelihood(np.exp(theta), x, t_x, T)
        return -(w @ ll) / total, -(grad @ w) / total

    scale = max(float(np.average(T, weights=w)), 1.0)
    start = np.log([1.0, scale, 1.0, 1.0])
    result = _maximise(objective, start)
    r, alpha, a, b = np.exp(result.x)
    return BetaGeo(r, alpha, a, b, -result.fun * total, total, _converged(result))


def _maximise(objective, start):
    """Minimise the mean negative log-likelihood over log-parameters."""
    return minimize(objective, start, jac=True, method="L-BFGS-B",
                    options={"maxiter": 5000, "gtol": 1e-9, "ftol": 1e-14})  # fmt: skip


def _converged(result) -> bool:
    """At a maximum: the optimiser says so, or its line search stalled where the gradient is
    flat anyway (a base with no dropout drifts along a ridge of a -> 0, b -> inf)."""
    return bool(result.success or np.max(np.abs(result.jac)) < GRADIENT_TOLERANCE)


def gamma_gamma_log_likelihood(params, x, m) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's log-likelihood of mean repeat value ``m`` over ``x`` repeats, and its
    gradient in (log p, log q, log v)."""
    p, q, v = params
    x, m = _as_arrays(x, m)
    px = p * x
    ll = (
        gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v)
        + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(x * m + v)
    )  # fmt: skip
    d_p = x * (digamma(px + q) - digamma(px) + np.log(m) + np.log(x) - np.log(x * m + v))
    d_q = digamma(px + q) - digamma(q) + np.log(v) - np.log(x * m + v)
    d_v = q / v - (px + q) / (x * m + v)
    return ll, np.stack([d_p * p, d_q * q, d_v * v])


def fit_gamma_gamma(x, m, weights=None) -> GammaGamma:
    """Maximum-likelihood Gamma-Gamma from customers with ``x`` > 0 repeats of mean value
    ``m`` > 0, each counted ``weights`` times."""
    x, m = _as_arrays(x, m)
    w = _weights(weights, len(x))
    if np.any((x <= 0) | (m <= 0)):
        raise FitError("Gamma-Gamma takes customers with repeat purchases of positive value")
    if w.sum() < 10:
        raise FitError("Gamma-Gamma needs at least 10 customers with repeat purchases")
    total = w.sum()

    def objective(theta):
        ll, grad = gamma_gamma_log_likelihood(np.exp(theta), x, m)
        return -(w @ ll) / total, -(grad @ w) / total

    mean = float(np.average(m, weights=w))
    start = np.log([1.0, 2.0, mean])
    result = _maximise(objective, start)
    p, q, v = np.exp(result.x)
    return GammaGamma(p, q, v, -result.fun * total, total, _converged(result))


def probability_alive(model: BetaGeo, x, t_x, T) -> np.ndarray:
    """P(still a customer at T | x, t_x, T); 1 for a customer with no repeat yet."""
    x, t_x, T = _as_arrays(x, t_x, T)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_odds = (
            np.log(model.a) - np.log(model.b + x - 1)
            + (model.r + x) * (np.log(model.alpha + T) - np.log(model.alpha + t_x))
        )  # fmt: skip
    return np.where(x > 0, 1 / (1 + np.exp(log_odds)), 1.0)


def expected_purchases(model: BetaGeo, horizon: float, x, t_x, T) -> np.ndarray:
    """Expected purchases in (T, T + horizon] given the history (FHL 2005, eq. 10)."""
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    x, t_x, T = _as_arrays(x, t_x, T)
    ra, bb, c = r + x, b + x, a + b + x - 1
    z = horizon / (alpha + T + horizon)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_hyp = np.log(hyp2f1(ra, bb, c, z))
        # Euler's transformation where the series overflows
        log_hyp_euler = np.log(hyp2f1(c - ra, c - bb, c, z)) + (c - ra - bb) * np.log1p(-z)
        log_hyp = np.where(np.isfinite(log_hyp), log_hyp, log_hyp_euler)
        shrink = ra * (np.log(alpha + T) - np.log(alpha + T + horizon))
        numerator = (a + b + x - 1) / (a - 1) * -np.expm1(log_hyp + shrink)
        odds = np.where(
            x > 0,
            a / (b + x - 1) * np.exp(ra * (np.log(alpha + T) - np.log(alpha + t_x))),
            0.0,
        )
    return numerator / (1 + odds)


def expected_order_value(model: GammaGamma, x, m) -> np.ndarray:
    """E[value of a purchase | x repeats of mean value m]: the population mean p v / (q - 1)
    shrunk towards the customer's own mean as x grows; the population mean with no repeat.
    A mean below zero (repeats refunded beyond their value) counts as zero. Needs q > 1 (a
    finite population mean)."""
    if model.q <= 1:
        raise FitError(f"Gamma-Gamma q = {model.q:.3g} <= 1: spend has no finite mean")
    x, m = _as_arrays(x, m)
    m = np.where(x > 0, np.maximum(np.nan_to_num(m), 0.0), 0.0)
    p, q, v = model.p, model.q, model.v
    return p * (v + x * m) / (p * x + q - 1)
