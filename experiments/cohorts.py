"""LTV cohorts: customers grouped by the calendar month of their first order.

``build_cohorts`` writes ``experiments.ltv_cohorts`` (``ltv_cohorts`` below) and
``experiments.ltv_curves`` (``ltv_curves``) for all customers with orders and, by assignment
among the customers eligible for marketing texts (``experiments.program_units``), for the
global control group and the rest: two groups that differ only by the hash that assigned
them, so their curves compare.

For cohort month c and k = 0, 1, ... (calendar months between c and an order's month; every
month up to the last month of the data is present, also with no orders):
  cohort_size                     customers whose first order fell in c
  active_customers                of them, customers with an order in month c + k
  active_share                    active_customers / cohort_size
  revenue                         their revenue in month c + k
  cumulative_revenue_per_customer revenue of months 0..k / cohort_size (not / active)
Months are UTC calendar months. Computed in DuckDB over the DataFrame (set-based).
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd
from scipy import stats

COLUMNS = [
    "cohort_month",
    "months_since_first_order",
    "group",
    "cohort_size",
    "active_customers",
    "active_share",
    "revenue",
    "cumulative_revenue_per_customer",
]


def ltv_cohorts(orders: pd.DataFrame, *, group: str = "all", through=None) -> pd.DataFrame:
    """One row per (cohort month, months since first order) from orders with
    ``customer_id``, ``ordered_at`` and ``revenue`` (one row per order)."""
    missing = {"customer_id", "ordered_at", "revenue"} - set(orders.columns)
    if missing:
        raise ValueError(f"orders need the columns {sorted(missing)}")
    if orders.empty:
        return pd.DataFrame(columns=COLUMNS)
    at = pd.to_datetime(orders["ordered_at"], utc=True)
    if at.isna().any() or orders["revenue"].isna().any() or orders["customer_id"].isna().any():
        raise ValueError("orders hold empty customer ids, times or revenue")
    if through is not None:
        t = pd.Timestamp(through)
        t = t.tz_convert("UTC") if t.tzinfo else t
        last = t.year * 12 + t.month - 1
    else:
        last = None
    frame = pd.DataFrame(  # naive UTC times: DuckDB reads them as they are
        {"customer_id": orders["customer_id"].astype(str).to_numpy(),
         "ordered_at": at.dt.tz_localize(None).to_numpy(),
         "revenue": orders["revenue"].astype(float).to_numpy()}
    )  # fmt: skip
    con = duckdb.connect()
    con.register("orders_frame", frame)
    out = con.execute(
        """WITH o AS (SELECT customer_id, revenue,
                       year(ordered_at) * 12 + month(ordered_at) - 1 AS m
                   FROM orders_frame),
        first AS (SELECT customer_id, min(m) AS cohort FROM o GROUP BY 1),
        sizes AS (SELECT cohort, count(*) AS cohort_size FROM first GROUP BY 1),
        per AS (SELECT f.cohort, o.m - f.cohort AS k, count(DISTINCT o.customer_id) AS active,
                    sum(o.revenue) AS revenue
                FROM o JOIN first AS f USING (customer_id) GROUP BY 1, 2),
        grid AS (SELECT cohort, unnest(range(0, coalesce($last, (SELECT max(m) FROM o))
                                                   - cohort + 1)) AS k, cohort_size
                 FROM sizes)
        SELECT make_date(CAST(g.cohort // 12 AS INTEGER), CAST(g.cohort % 12 + 1 AS INTEGER), 1)
                AS cohort_month,
            CAST(g.k AS INTEGER) AS months_since_first_order, g.cohort_size,
            CAST(coalesce(p.active, 0) AS INTEGER) AS active_customers,
            coalesce(p.active, 0) / g.cohort_size AS active_share,
            coalesce(p.revenue, 0.0) AS revenue,
            sum(coalesce(p.revenue, 0.0)) OVER (PARTITION BY g.cohort ORDER BY g.k)
                / g.cohort_size AS cumulative_revenue_per_customer
        FROM grid AS g LEFT JOIN per AS p USING (cohort, k)
        ORDER BY g.cohort, g.k""",
        {"last": last},
    ).df()
    con.close()
    out["cohort_month"] = pd.to_datetime(out["cohort_month"]).dt.date
    out["group"] = group
    return out[COLUMNS].reset_index(drop=True)


CURVE_COLUMNS = [
    "group", "months_since_first_order", "cohorts", "customers", "revenue_per_customer",
    "cumulative_revenue_per_customer", "ci_low", "ci_high",
]  # fmt: skip

CURVES_SQL = """
WITH o AS (
    SELECT "group", customer_id, revenue, year(ordered_at) * 12 + month(ordered_at) - 1 AS m
    FROM orders_frame),
first AS (SELECT "group", customer_id, min(m) AS cohort FROM o GROUP BY ALL),
sizes AS (
    SELECT "group", cohort, count(*) AS n_c, $last - cohort AS reach FROM first
    WHERE cohort <= $last GROUP BY ALL),
months AS (SELECT "group", unnest(range(0, max(reach) + 1)) AS k FROM sizes GROUP BY 1),
reached AS (  -- customers and cohorts whose month k is complete
    SELECT m."group", m.k, sum(s.n_c) AS n_k, count(*) AS cohorts
    FROM months AS m JOIN sizes AS s ON s."group" = m."group" AND s.reach >= m.k GROUP BY ALL),
per AS (  -- each customer's revenue in each complete month, over that month's population
    SELECT o."group", o.customer_id, f.cohort, o.m - f.cohort AS k,
        sum(o.revenue) / any_value(r.n_k) AS w
    FROM o JOIN first AS f USING ("group", customer_id)
    JOIN reached AS r ON r."group" = o."group" AND r.k = o.m - f.cohort
    WHERE o.m <= $last GROUP BY ALL),
steps AS (  -- z_i after each month a customer bought in (z_i(k): their share of the curve)
    SELECT "group", cohort, k, w,
        sum(w) OVER (PARTITION BY "group", customer_id ORDER BY k) AS z_after
    FROM per),
changes AS (  -- what those months add to the cohort's sums of z_i and of z_i^2
    SELECT "group", cohort, k, sum(w) AS dz, sum(w * (2 * z_after - w)) AS dzz
    FROM steps GROUP BY ALL),
by_cohort AS (  -- sums of z_i(k) and z_i(k)^2 over the cohort's customers, every month k
    SELECT s."group", s.cohort, m.k, s.n_c,
        coalesce(sum(c.dz) OVER cumulative, 0) AS sz,
        coalesce(sum(c.dzz) OVER cumulative, 0) AS szz
    FROM sizes AS s JOIN months AS m ON m."group" = s."group"
    LEFT JOIN changes AS c ON c."group" = s."group" AND c.cohort = s.cohort AND c.k = m.k
    WINDOW cumulative AS (PARTITION BY s."group", s.cohort ORDER BY m.k)),
variance AS (
    SELECT "group", k, sum(sz) AS curve,
        greatest(sum(CASE WHEN n_c > 1 THEN n_c * (szz - sz * sz / n_c) / (n_c - 1) ELSE 0 END),
            0) AS var  -- a float sum of equal values may fall a hair below zero
    FROM by_cohort GROUP BY ALL),
increments AS (
    SELECT r."group", r.k, r.cohorts, r.n_k, coalesce(sum(p.w), 0) AS increment
    FROM reached AS r LEFT JOIN per AS p USING ("group", k) GROUP BY ALL)
SELECT i."group", CAST(i.k AS INTEGER) AS months_since_first_order,
    CAST(i.cohorts AS INTEGER) AS cohorts, CAST(i.n_k AS BIGINT) AS customers,
    i.increment AS revenue_per_customer, v.curve AS cumulative_revenue_per_customer,
    v.curve - $z * sqrt(v.var) AS ci_low, v.curve + $z * sqrt(v.var) AS ci_high
FROM increments AS i JOIN variance AS v USING ("group", k)
ORDER BY 1, 2"""


def ltv_curves(orders: pd.DataFrame, through, alpha: float = 0.05) -> pd.DataFrame:
    """Cumulative revenue per customer by months since first order, per ``group``, from
    orders with ``group``, ``customer_id``, ``ordered_at`` and ``revenue``; only months
    complete before ``through``'s month count.

    Month k's increment is the mean revenue in month k over the customers of the cohorts
    that have completed month k (never over cohorts that have not), and the curve is the sum
    of the increments, so it never falls as younger cohorts drop out. Its interval: the curve
    is a sum over customers of z_i(k) = sum over j <= k, j complete for i's cohort, of
    r_ij / n_j, independent across customers and alike within a cohort, so
    Var = sum over cohorts c of n_c s_c^2(z(k)) and the interval is curve +- z_(1-alpha/2) SD.
    """
    if orders.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    t = pd.Timestamp(through)
    t = t.tz_convert("UTC") if t.tzinfo else t
    last = t.year * 12 + t.month - 2  # the last complete month
    frame = pd.DataFrame({
        "group": orders["group"].astype(str).to_numpy(),
        "customer_id": orders["customer_id"].astype(str).to_numpy(),
        "ordered_at": pd.to_datetime(orders["ordered_at"], utc=True).dt.tz_localize(None)
            .to_numpy(),
        "revenue": orders["revenue"].astype(float).to_numpy(),
    })  # fmt: skip
    con = duckdb.connect()
    # a table, not the frame itself: the query reads the orders twice, and a scan of a
    # pandas frame converts its Python strings again each time
    con.register("orders_in", frame)
    con.execute("CREATE TABLE orders_frame AS SELECT * FROM orders_in")
    z = float(stats.norm.ppf(1 - alpha / 2))
    out = con.execute(CURVES_SQL, {"last": last, "z": z}).df()
    con.close()
    return out[CURVE_COLUMNS].reset_index(drop=True)


ORDERS_SQL = """
SELECT 'all' AS "group", customer_id, ordered_at, net_revenue AS revenue
FROM marts.fct_orders WHERE order_status <> 'cancelled' AND ordered_at <= $as_of
{by_assignment}"""
BY_ASSIGNMENT_SQL = """UNION ALL
SELECT CASE WHEN u.global_control THEN 'global_control' ELSE 'rest' END, o.customer_id,
    o.ordered_at, o.net_revenue
FROM marts.fct_orders AS o JOIN experiments.program_units AS u USING (customer_id)
WHERE o.order_status <> 'cancelled' AND o.ordered_at <= $as_of"""


def build_cohorts(con, as_of: datetime) -> int:
    """Write ``experiments.ltv_cohorts`` and ``experiments.ltv_curves`` as of ``as_of``;
    returns the cohort rows written."""
    assigned = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'experiments' AND table_name = 'program_units'"
    ).fetchone()[0]
    sql = ORDERS_SQL.format(by_assignment=BY_ASSIGNMENT_SQL if assigned else "")
    orders = con.execute(sql, {"as_of": as_of.replace(tzinfo=None)}).df()
    frames = [ltv_cohorts(part, group=str(group), through=as_of)
              for group, part in orders.groupby("group", sort=True)]  # fmt: skip
    cohorts = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    curves = ltv_curves(orders, through=as_of)
    con.execute("CREATE SCHEMA IF NOT EXISTS experiments")
    for name, table in (("ltv_cohorts", cohorts), ("ltv_curves", curves)):
        con.register("_table", table)
        con.execute(f"CREATE OR REPLACE TABLE experiments.{name} AS SELECT * FROM _table")
        con.unregister("_table")
    return len(cohorts)
