"""LTV cohorts: customers grouped by the calendar month of their first order.

For cohort month c and k = 0, 1, ... (calendar months between c and an order's month; every
month up to the last month of the data is present, also with no orders):
  cohort_size                     customers whose first order fell in c
  active_customers                of them, customers with an order in month c + k
  active_share                    active_customers / cohort_size
  revenue                         their revenue in month c + k
  cumulative_revenue_per_customer revenue of months 0..k / cohort_size (not / active)
Months are UTC calendar months.
"""

from __future__ import annotations

import numpy as np
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
    month = at.dt.tz_localize(None).dt.to_period("M")
    frame = pd.DataFrame(
        {"customer_id": orders["customer_id"].to_numpy(), "month": month,
         "revenue": orders["revenue"].astype(float).to_numpy()}
    )  # fmt: skip
    first = frame.groupby("customer_id")["month"].min()
    frame["cohort"] = frame["customer_id"].map(first)
    frame["k"] = (frame["month"] - frame["cohort"]).apply(lambda d: d.n).astype(int)
    last = pd.Period(through, "M") if through is not None else frame["month"].max()
    sizes = first.value_counts().sort_index()
    spans = np.array([(last - c).n + 1 for c in sizes.index])
    grid = pd.DataFrame(
        {
            "cohort": np.repeat(sizes.index.to_numpy(), spans),
            "k": np.concatenate([np.arange(n) for n in spans]),
            "cohort_size": np.repeat(sizes.to_numpy(), spans),
        }
    )
    per = frame.groupby(["cohort", "k"]).agg(
        active_customers=("customer_id", "nunique"), revenue=("revenue", "sum")
    )
    out = grid.merge(per.reset_index(), on=["cohort", "k"], how="left")
    out[["active_customers", "revenue"]] = out[["active_customers", "revenue"]].fillna(0)
    out["active_customers"] = out["active_customers"].astype(int)
    out["active_share"] = out["active_customers"] / out["cohort_size"]
    out["cumulative_revenue_per_customer"] = (
        out.groupby("cohort")["revenue"].cumsum() / out["cohort_size"]
    )
    out["cohort_month"] = out["cohort"].dt.to_timestamp().dt.date
    out["months_since_first_order"] = out["k"]
    out["group"] = group
    return out[COLUMNS].reset_index(drop=True)
