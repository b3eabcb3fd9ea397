"""LTV cohorts: a hand-made example and an independent per-customer recount."""

import numpy as np
import pandas as pd
import pytest

from experiments.cohorts import COLUMNS, ltv_cohorts


def test_hand_made_cohorts_keep_empty_months():
    orders = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "c", "c"],
            "ordered_at": ["2025-01-03T10:00:00Z", "2025-03-31T23:59:00Z",
                           "2025-01-20T08:00:00Z", "2025-02-01T00:00:00Z",
                           "2025-03-02T00:00:00Z"],
            "revenue": [10.0, 30.0, 20.0, 5.0, 7.0],
        }
    )  # fmt: skip
    got = ltv_cohorts(orders)
    assert list(got.columns) == COLUMNS
    jan = got[got.cohort_month.astype(str) == "2025-01-01"].set_index("months_since_first_order")
    # January cohort: a and b; February nobody ordered; March only a (30)
    assert list(jan.cohort_size) == [2, 2, 2]
    assert list(jan.active_customers) == [2, 0, 1]
    assert list(jan.active_share) == [1.0, 0.0, 0.5]
    assert list(jan.revenue) == [30.0, 0.0, 30.0]
    assert list(jan.cumulative_revenue_per_customer) == [15.0, 15.0, 30.0]
    feb = got[got.cohort_month.astype(str) == "2025-02-01"]
    assert list(feb.months_since_first_order) == [0, 1]
    assert list(feb.cumulative_revenue_per_customer) == [5.0, 12.0]
    assert set(got.group) == {"all"}


def test_matches_an_independent_recount():
    rng = np.random.default_rng(3)
    n = 3000
    orders = pd.DataFrame(
        {
            "customer_id": rng.integers(0, 400, n).astype(str),
            "ordered_at": pd.Timestamp("2024-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 500 * 24 * 3600, n), unit="s"),
            "revenue": rng.gamma(2, 15, n).round(2),
        }
    )
    got = ltv_cohorts(orders).set_index(["cohort_month", "months_since_first_order"])
    # plain Python: per customer, their first month, then every order
    months = [(t.year, t.month) for t in orders.ordered_at]
    first: dict[str, tuple] = {}
    for cid, m in zip(orders.customer_id, months, strict=True):
        first[cid] = min(first.get(cid, m), m)
    active: dict[tuple, set] = {}
    revenue: dict[tuple, float] = {}
    for cid, m, r in zip(orders.customer_id, months, orders.revenue, strict=True):
        c = first[cid]
        k = (m[0] - c[0]) * 12 + m[1] - c[1]
        active.setdefault((c, k), set()).add(cid)
        revenue[(c, k)] = revenue.get((c, k), 0.0) + r
    size: dict[tuple, int] = {}
    for c in first.values():
        size[c] = size.get(c, 0) + 1
    for (c, k), who in active.items():
        row = got.loc[(pd.Timestamp(c[0], c[1], 1).date(), k)]
        assert row.cohort_size == size[c]
        assert row.active_customers == len(who)
        assert row.revenue == pytest.approx(revenue[(c, k)])
    last = max(months)
    for c in size:  # every month to the end of the data, orders or not
        span = (last[0] - c[0]) * 12 + last[1] - c[1] + 1
        assert len(got.loc[pd.Timestamp(c[0], c[1], 1).date()]) == span


def test_bad_orders_get_clear_errors():
    with pytest.raises(ValueError, match="columns"):
        ltv_cohorts(pd.DataFrame({"customer_id": ["a"]}))
    with pytest.raises(ValueError, match="empty"):
        ltv_cohorts(pd.DataFrame({"customer_id": ["a"], "ordered_at": [None], "revenue": [1.0]}))
    assert ltv_cohorts(pd.DataFrame(columns=["customer_id", "ordered_at", "revenue"])).empty
