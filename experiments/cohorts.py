"""LTV cohorts: customers grouped by the calendar month of their first order.

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

import duckdb
import pandas as pd

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
