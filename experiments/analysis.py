"""Holdout analysis in the warehouse: units from the send decisions, outcomes from the marts,
estimates from ``experiments.stats``. Writes ``experiments.units`` and
``experiments.campaign_results`` (schema ``experiments``), and keeps each analysis date's
results in ``experiments.campaign_results_history``.

Units (intent to treat): each customer's first decision per campaign that was ``sent``,
``held_out`` or ``not_targeted`` (treated, but uplift targeting chose not to text) in a real
run, whose attribution window (default 7 days) has closed by as_of. A
message that was not delivered still counts in its arm.

Outcomes within (decided_at, decided_at + window]: ``conversion`` (any order not cancelled),
``revenue`` (net), ``orders``, and ``campaign_outcome`` (an order line of the decision's
product, e.g. the reminded product, when the decision names one; else conversion).

Covariates are the decision's own (``sends.decisions``): the lifecycle stage, loyalty tier and
RFM segment the customer had when the decision was made, and ``pre_period_revenue`` (net
revenue in the 30 days before it, the CUPED covariate of every metric, ``cuped_*`` beside the
plain estimate). Nothing measured after the message defines a segment: a lapsed customer whom
a win-back made buy again stays in the lapsed segment.

Comparisons: ``vs_holdout`` (treatment vs the campaign holdout), ``vs_global_control``
(treatment vs the global control group; marketing campaigns with global-control units) and
``variant_vs_variant`` (head to head among the treated, segment ``variant=B vs variant=A``:
B against A; ``variant_winners`` applies ``WINNER_RULE`` to them). Segments: ``all``,
``lifecycle_stage=...``, ``loyalty_tier=...``, ``rfm_segment=...``, ``variant=...`` with
Benjamini-Hochberg adjusted p-values within each campaign, comparison and metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

import numpy as np
import pandas as pd

from experiments.history import keep_history
from experiments.stats import (
    SEQUENTIAL_TUNING,
    SRM_ALPHA,
    benjamini_hochberg,
    lift,
    mde,
    srm_p_value,
)
from send_jobs.ledger import PRE_PERIOD_DAYS

METRICS = {
    "conversion": "proportion",
    "campaign_outcome": "proportion",
    "revenue": "mean",
    "orders": "mean",
}

# a campaign that holds nobody out (a service message) is not measured, and says why
NO_HOLDOUT_BY_DESIGN = "keeps no holdout by design (holdout_share 0): not measured"

WINNER_RULE = (
    "a variant wins once the always-valid interval of its relative lift in conversion "
    "excludes zero, above, against every other variant of the campaign"
)

# the decision's further covariates and its uplift targeting, kept on each unit for the
# uplift models (targeting/uplift.py) and their Qini evaluation
UPLIFT_COLUMNS = (
    "orders_count", "lifetime_revenue", "days_since_last_order", "probability_alive",
    "expected_revenue_90d", "targeting", "predicted_uplift",
)  # fmt: skip

DDL = """
CREATE SCHEMA IF NOT EXISTS experiments;
"""


def build_units(con, as_of: datetime, window_days: int = 7) -> int:
    """(Re)build experiments.units as of as_of; returns the number of units."""
    con.execute(DDL)
    con.execute(
        f"""CREATE OR REPLACE TABLE experiments.units AS
        WITH first_decision AS (
            SELECT d.campaign_id, d.category, d.customer_id, d.arm, d.as_of AS decided_at,
                d.variant, d.product_id, d.outcome AS decision,
                coalesce(d.estimated_cost, 0) AS estimated_cost, d.lifecycle_stage,
                d.loyalty_tier, d.rfm_segment, d.pre_period_revenue AS decided_pre_period,
                {", ".join(f"d.{c}" for c in UPLIFT_COLUMNS)}
            FROM sends.decisions AS d JOIN sends.runs AS r USING (run_id)
            WHERE NOT r.dry_run AND d.outcome IN ('sent', 'held_out', 'not_targeted')
            QUALIFY row_number() OVER (PARTITION BY d.campaign_id, d.customer_id
                                       ORDER BY d.as_of) = 1),
        units AS (
            SELECT * FROM first_decision
            WHERE decided_at + INTERVAL {int(window_days)} DAY <= $as_of),
        orders AS (
            SELECT o.customer_id, o.ordered_at, o.net_revenue FROM marts.fct_orders AS o
            WHERE o.order_status <> 'cancelled' AND o.ordered_at <= $as_of)
        SELECT u.campaign_id, u.category, u.customer_id, u.arm, u.decided_at, u.variant,
            u.decision, u.estimated_cost, u.lifecycle_stage, u.loyalty_tier, u.rfm_segment,
            count(o.ordered_at) FILTER (WHERE o.ordered_at > u.decided_at
                AND o.ordered_at <= u.decided_at + INTERVAL {int(window_days)} DAY) AS orders,
            coalesce(sum(o.net_revenue) FILTER (WHERE o.ordered_at > u.decided_at
                AND o.ordered_at <= u.decided_at + INTERVAL {int(window_days)} DAY), 0)
                AS revenue,
            -- decisions written before the ledger kept it: the orders before the decision
            coalesce(any_value(u.decided_pre_period),
                     sum(o.net_revenue) FILTER (WHERE o.ordered_at <= u.decided_at
                         AND o.ordered_at > u.decided_at - INTERVAL {PRE_PERIOD_DAYS} DAY),
                     0) AS pre_period_revenue,
            u.product_id, {", ".join(f"u.{c}" for c in UPLIFT_COLUMNS)}
        FROM units AS u
        LEFT JOIN orders AS o ON o.customer_id = u.customer_id
        GROUP BY u.campaign_id, u.category, u.customer_id, u.arm, u.decided_at, u.variant,
            u.decision, u.estimated_cost, u.lifecycle_stage, u.loyalty_tier, u.rfm_segment,
            u.product_id, {", ".join(f"u.{c}" for c in UPLIFT_COLUMNS)}""",
        {"as_of": as_of.replace(tzinfo=None)},
    )
    con.execute(
        f"""CREATE OR REPLACE TABLE experiments.units AS
        SELECT u.* EXCLUDE (product_id),
            CAST(u.orders > 0 AS INTEGER) AS conversion,
            CASE WHEN u.product_id IS NULL THEN CAST(u.orders > 0 AS INTEGER)
                 ELSE CAST(EXISTS (SELECT 1 FROM marts.fct_order_lines AS l
                     WHERE l.customer_id = u.customer_id AND l.product_id = u.product_id
                       AND l.is_cancelled = 0 AND l.ordered_at > u.decided_at
                       AND l.ordered_at <= u.decided_at + INTERVAL {int(window_days)} DAY)
                     AS INTEGER) END AS campaign_outcome
        FROM experiments.units AS u"""
    )
    return con.execute("SELECT count(*) FROM experiments.units").fetchone()[0]


# the columns an estimate reads, as float arrays per campaign
NUMERIC = (*METRICS, "pre_period_revenue", "estimated_cost")


def _segments(units: pd.DataFrame):
    """(segment, positions of its units) of one campaign's units, "all" first."""
    yield "all", np.arange(len(units))
    for column in ("lifecycle_stage", "loyalty_tier", "rfm_segment", "variant"):
        positions = units.groupby(column, dropna=True).indices
        for value in sorted(positions):
            yield f"{column}={value}", positions[value]


def _mde(control: np.ndarray, n_t: int, kind: str, control_mean: float):
    n = len(control) + n_t
    if not (len(control) and n_t):
        return math.nan
    if kind == "proportion":
        return mde(n, len(control) / n, baseline_rate=min(max(control_mean, 1e-9), 1 - 1e-9))
    sd = float(control.std(ddof=1)) if len(control) > 1 else math.nan
    return mde(n, len(control) / n, sd=sd) if not math.isnan(sd) else math.nan


def _estimates(cols: dict[str, np.ndarray], c: np.ndarray, t: np.ndarray,
               tuning: float) -> list[dict]:  # fmt: skip
    """One row per metric: the treatment units at positions ``t`` against the control units
    at ``c`` (positions into the campaign's ``cols``)."""
    rows, conv = [], None
    cost = float(np.nansum(cols["estimated_cost"][t]))
    pre = cols["pre_period_revenue"]
    for metric, kind in METRICS.items():
        est = lift(
            cols[metric][c], cols[metric][t], metric=kind, control_covariate=pre[c],
            treatment_covariate=pre[t], tuning=tuning,
        )  # fmt: skip
        conv = est if metric == "conversion" else conv
        incremental_conversions = conv.abs_lift * len(t) if conv else math.nan
        rows.append({
            "metric": metric, "n_control": est.n_control, "n_treatment": est.n_treatment,
            "control_mean": est.control_mean, "treatment_mean": est.treatment_mean,
            "abs_lift": est.abs_lift, "abs_ci_low": est.abs_ci_low,
            "abs_ci_high": est.abs_ci_high, "rel_lift": est.rel_lift,
            "rel_ci_low": est.rel_ci_low, "rel_ci_high": est.rel_ci_high,
            "p_value": est.p_value, "seq_abs_ci_low": est.seq_abs_ci_low,
            "seq_abs_ci_high": est.seq_abs_ci_high, "seq_rel_ci_low": est.seq_rel_ci_low,
            "seq_rel_ci_high": est.seq_rel_ci_high, "cuped_rel_lift": est.cuped_rel_lift,
            "cuped_rel_ci_low": est.cuped_rel_ci_low,
            "cuped_rel_ci_high": est.cuped_rel_ci_high,
            "mde": _mde(cols[metric][c], len(t), kind, est.control_mean),
            "incremental_conversions": (
                est.abs_lift * len(t) if metric == "conversion" else math.nan),
            "incremental_revenue": est.abs_lift * len(t) if metric == "revenue" else math.nan,
            "cost": cost,
            "cost_per_incremental_conversion": (
                cost / incremental_conversions
                if incremental_conversions and incremental_conversions > 0 else math.nan),
            "note": est.note,
        })  # fmt: skip
    return rows


def _comparisons(u: pd.DataFrame):
    """(comparison, segment, control positions, treatment positions) of one campaign's
    units: treatment against each control arm per segment, then each variant against each
    other variant."""
    arm = u["arm"].to_numpy()
    arms = [("vs_holdout", "holdout")]
    if (u["category"] == "marketing").any() and (arm == "global_control").any():
        arms.append(("vs_global_control", "global_control"))
    for comparison, control_arm in arms:
        for segment, idx in _segments(u):
            yield comparison, segment, idx[arm[idx] == control_arm], idx[arm[idx] == "treatment"]
    treated = np.flatnonzero(arm == "treatment")
    variant = u["variant"].to_numpy()[treated]
    variants = sorted(u["variant"].iloc[treated].dropna().unique())
    for i, a in enumerate(variants):
        for b in variants[i + 1 :]:
            yield ("variant_vs_variant", f"variant={b} vs variant={a}",
                   treated[variant == a], treated[variant == b])  # fmt: skip


def _srm(u: pd.DataFrame, share: float | None) -> float:
    if not share or not 0 < share < 1:
        return math.nan
    arms = u["arm"].value_counts()
    return srm_p_value([arms.get("treatment", 0), arms.get("holdout", 0)], [1 - share, share])


def campaign_results(
    units: pd.DataFrame,
    holdout_shares: dict[str, float],
    as_of: datetime,
    tuning: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Estimates per campaign, comparison, segment and metric (see the module docstring);
    ``tuning`` is each campaign's always-valid tuning size (default ``SEQUENTIAL_TUNING``)."""
    rows = []
    for campaign_id, u in units.groupby("campaign_id"):
        srm = _srm(u, holdout_shares.get(campaign_id))
        n_tuning = (tuning or {}).get(campaign_id, SEQUENTIAL_TUNING)
        by_design = holdout_shares.get(campaign_id) == 0
        cols = {name: u[name].to_numpy(float) for name in NUMERIC}
        for comparison, segment, c, t in _comparisons(u):
            for row in _estimates(cols, c, t, n_tuning):
                if by_design and comparison == "vs_holdout" and not len(c):
                    row["note"] = NO_HOLDOUT_BY_DESIGN
                rows.append({"campaign_id": campaign_id, "comparison": comparison,
                             "segment": segment, **row, "srm_p_value": srm,
                             "srm_flag": bool(srm < SRM_ALPHA) if not math.isnan(srm) else False,
                             "as_of": as_of.replace(tzinfo=None)})  # fmt: skip
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["p_value_adjusted"] = np.nan
    for _, idx in out.groupby(["campaign_id", "comparison", "metric"]).groups.items():
        out.loc[idx, "p_value_adjusted"] = benjamini_hochberg(out.loc[idx, "p_value"])
    return out


def variant_winners(results: pd.DataFrame, metric: str = "conversion") -> dict[str, str | None]:
    """Per campaign with two or more variants: the variant that wins under the stated rule
    (``WINNER_RULE``), or None while no variant does."""
    h2h = results[(results.comparison == "variant_vs_variant") & (results.metric == metric)]
    winners: dict[str, str | None] = {}
    for campaign_id, rows in h2h.groupby("campaign_id"):
        beats: dict[str, set[str]] = {}
        names: set[str] = set()
        for row in rows.itertuples():
            b, a = (side.removeprefix("variant=") for side in row.segment.split(" vs "))
            names |= {a, b}
            if row.seq_rel_ci_low > 0:
                beats.setdefault(b, set()).add(a)
            elif row.seq_rel_ci_high < 0:
                beats.setdefault(a, set()).add(b)
        won = [v for v in sorted(names) if beats.get(v, set()) == names - {v}]
        winners[campaign_id] = won[0] if won else None
    return winners


def analyse(con, as_of: datetime, holdout_shares: dict[str, float], window_days: int = 7,
            tuning: Mapping[str, float] | None = None) -> pd.DataFrame:  # fmt: skip
    """Build units, estimate, and write experiments.campaign_results; returns the results."""
    build_units(con, as_of, window_days)
    units = con.execute("SELECT * FROM experiments.units").df()
    results = campaign_results(units, holdout_shares, as_of, tuning)
    con.execute(DDL)
    if results.empty:
        con.execute("DROP TABLE IF EXISTS experiments.campaign_results")
        return results
    con.register("_results", results)
    con.execute("CREATE OR REPLACE TABLE experiments.campaign_results AS SELECT * FROM _results")
    con.unregister("_results")
    keep_history(con, results, "campaign_results", as_of)
    return results
