"""predictions.customer_value: each buyer's probability alive, expected purchases and expected
revenue over the next 90 days, from BG/NBD and Gamma-Gamma fitted on the whole base.

The fit reads ``marts.customer_purchase_history`` grouped in SQL (one row per distinct
history with its customer count), scores each distinct history once, and joins the scores
back to the customers. Every fit is recorded in ``predictions.customer_value_fits`` with its
parameters, or with why there is none: a base that cannot identify the model gets NULL
predictions and a reason, never an error in the nightly build.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from targeting import clv

HORIZON_DAYS = 90
HISTORY = "marts.customer_purchase_history"

TABLES_SQL = """
CREATE SCHEMA IF NOT EXISTS predictions;
CREATE TABLE IF NOT EXISTS predictions.customer_value (
    customer_id VARCHAR NOT NULL,   -- one row per customer of the purchase history mart
    probability_alive DOUBLE,
    probability_alive_30d_ago DOUBLE,
    expected_purchases_90d DOUBLE,
    expected_purchase_value DOUBLE,
    expected_revenue_90d DOUBLE,
    as_of TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS predictions.customer_value_fits (
    as_of TIMESTAMP NOT NULL,
    model VARCHAR NOT NULL,          -- bg_nbd or gamma_gamma
    status VARCHAR NOT NULL,         -- fitted or not_fitted
    reason VARCHAR,                  -- why not fitted, or what the fit left out
    parameters VARCHAR,              -- JSON: r, alpha, a, b (days) or p, q, v (currency)
    log_likelihood DOUBLE,
    customers BIGINT NOT NULL,       -- customers the fit read
    distinct_rows BIGINT NOT NULL,   -- grouped rows it was fitted on
    PRIMARY KEY (as_of, model)
);
"""


@dataclass(frozen=True)
class FitRecord:
    model: str
    status: str
    reason: str | None
    parameters: dict | None
    log_likelihood: float | None
    customers: int
    distinct_rows: int


def ensure_tables(con) -> None:
    """The predictions tables, empty until the first fit (the audiences join them)."""
    con.execute(TABLES_SQL)


def predict_customer_value(con, as_of: datetime) -> list[FitRecord]:
    """Fit both models on the purchase histories as of ``as_of`` (the features build's time),
    replace ``predictions.customer_value`` and record the fits; the fit records."""
    ensure_tables(con)
    as_of_naive = as_of.replace(tzinfo=None)
    histories = con.execute(
        f"""SELECT repeat_purchases AS x, recency_days AS t_x, age_days AS t, count(*) AS n
            FROM {HISTORY} GROUP BY ALL ORDER BY ALL"""
    ).df()
    purchases, purchases_fit = _fit(
        "bg_nbd", histories, lambda h: clv.fit_beta_geo(h.x, h.t_x, h.t, h.n)
    )
    spends = con.execute(
        f"""SELECT repeat_purchases AS x, mean_repeat_value AS m, count(*) AS n FROM {HISTORY}
            WHERE repeat_purchases > 0 AND mean_repeat_value > 0 GROUP BY ALL ORDER BY ALL"""
    ).df()
    spend, spend_fit = _fit("gamma_gamma", spends, lambda s: clv.fit_gamma_gamma(s.x, s.m, s.n))
    if spend is not None and spend.q <= 1:
        spend_fit = _not_fitted("gamma_gamma", spends, f"q = {spend.q:.3g} <= 1: no finite mean")
        spend = None
    left_out = con.execute(
        f"SELECT count(*) FROM {HISTORY} WHERE repeat_purchases > 0 AND NOT mean_repeat_value > 0"
    ).fetchone()[0]
    if left_out and spend is not None:
        why = f"{left_out} customers whose repeats netted no revenue left out of the fit"
        spend_fit = FitRecord(**{**asdict(spend_fit), "reason": why})
    con.execute("BEGIN")
    try:
        write_scores(con, purchases, spend, as_of_naive)
        purchases_fit = _with_unscored(con, purchases_fit)
        con.execute("DELETE FROM predictions.customer_value_fits WHERE as_of = ?", [as_of_naive])
        for record in (purchases_fit, spend_fit):
            con.execute(
                "INSERT INTO predictions.customer_value_fits VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [as_of_naive, record.model, record.status, record.reason,
                 json.dumps(record.parameters) if record.parameters else None,
                 record.log_likelihood, record.customers, record.distinct_rows],
            )  # fmt: skip
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return [purchases_fit, spend_fit]


def _fit(name: str, rows: pd.DataFrame, fit):
    """The fitted model and its record, or None and a record saying why not."""
    try:
        model = fit(rows)
    except clv.FitError as e:
        return None, _not_fitted(name, rows, str(e))
    params = {k: float(v) for k, v in asdict(model).items()
              if k not in ("log_likelihood", "customers", "converged")}  # fmt: skip
    status, reason = ("fitted", None) if model.converged else ("not_fitted", "did not converge")
    record = FitRecord(name, status, reason, params, float(model.log_likelihood),
                       int(rows.n.sum()), len(rows))  # fmt: skip
    return (model if model.converged else None), record


def _with_unscored(con, fit: FitRecord) -> FitRecord:
    """A fitted BG/NBD whose expected purchases cannot be computed for some customers (the
    estimate at a far edge of the parameter space, as when every buyer bought twice) says
    how many; their expected purchases and revenue are NULL."""
    if fit.status != "fitted":
        return fit
    unscored = con.execute(
        "SELECT count(*) FROM predictions.customer_value WHERE expected_purchases_90d IS NULL"
    ).fetchone()[0]
    if not unscored:
        return fit
    why = f"expected purchases not computable at these parameters for {unscored} customers"
    return FitRecord(**{**asdict(fit), "reason": why})


def _not_fitted(name: str, rows: pd.DataFrame, reason: str) -> FitRecord:
    return FitRecord(name, "not_fitted", reason, None, None, int(rows.n.sum()), len(rows))


def write_scores(con, purchases: clv.BetaGeo | None, spend: clv.GammaGamma | None,
                  as_of: datetime) -> None:  # fmt: skip
    """Score each distinct history (now, 30 days ago) once and join the scores back."""
    now = con.execute(
        f"SELECT DISTINCT repeat_purchases AS x, recency_days AS t_x, age_days AS t FROM {HISTORY}"
    ).df()
    earlier = con.execute(
        f"""SELECT DISTINCT repeat_purchases_30d_ago AS x, recency_days_30d_ago AS t_x,
                age_days_30d_ago AS t
            FROM {HISTORY} WHERE age_days_30d_ago IS NOT NULL"""
    ).df()
    for h in (now, earlier):
        h["alive"] = clv.probability_alive(purchases, h.x, h.t_x, h.t) if purchases else np.nan
    now["purchases"] = (
        clv.expected_purchases(purchases, HORIZON_DAYS, now.x, now.t_x, now.t)
        if purchases else np.nan
    )  # fmt: skip
    spends = con.execute(
        f"""SELECT DISTINCT repeat_purchases AS x, coalesce(mean_repeat_value, 0) AS m
            FROM {HISTORY}"""
    ).df()
    spends["value"] = clv.expected_order_value(spend, spends.x, spends.m) if spend else np.nan
    con.register("scored_now", now)
    con.register("scored_earlier", earlier)
    con.register("scored_spend", spends)
    try:
        con.execute("DELETE FROM predictions.customer_value")
        con.execute(
            f"""INSERT INTO predictions.customer_value
            SELECT h.customer_id,
                n.alive AS probability_alive,
                e.alive AS probability_alive_30d_ago,
                n.purchases AS expected_purchases_90d,
                s.value AS expected_purchase_value,
                n.purchases * s.value AS expected_revenue_90d,
                CAST(? AS TIMESTAMP) AS as_of
            FROM {HISTORY} AS h
            JOIN scored_now AS n ON n.x = h.repeat_purchases AND n.t_x = h.recency_days
                AND n.t = h.age_days
            LEFT JOIN scored_earlier AS e ON e.x = h.repeat_purchases_30d_ago
                AND e.t_x = h.recency_days_30d_ago AND e.t = h.age_days_30d_ago
            JOIN scored_spend AS s ON s.x = h.repeat_purchases
                AND s.m = coalesce(h.mean_repeat_value, 0)""",
            [as_of],
        )
    finally:
        for name in ("scored_now", "scored_earlier", "scored_spend"):
            con.unregister(name)
