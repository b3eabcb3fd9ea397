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


def test_ltv_curve_by_hand_never_falls_and_counts_only_complete_months():
    from experiments.cohorts import ltv_curves

    orders = pd.DataFrame({
        "group": "g",
        "customer_id": ["A", "A", "B", "B", "C", "C", "D"],
        "ordered_at": ["2026-01-05", "2026-02-05", "2026-01-09", "2026-03-09", "2026-02-02",
                       "2026-03-02", "2026-04-01"],
        "revenue": [10.0, 20.0, 30.0, 5.0, 40.0, 10.0, 99.0],
    })  # fmt: skip
    # as of 15 April: March is the last complete month; D (April) is in no complete month
    got = ltv_curves(orders, through="2026-04-15T00:00:00Z").set_index("months_since_first_order")
    # month 0: A, B, C (10 + 30 + 40) / 3; month 1: A 20, B 0, C 10 over 3; month 2: only
    # January's A and B have completed it: (0 + 5) / 2
    assert list(got.customers) == [3, 3, 2] and list(got.cohorts) == [2, 2, 1]
    assert list(got.revenue_per_customer) == pytest.approx([80 / 3, 10.0, 2.5])
    assert list(got.cumulative_revenue_per_customer) == pytest.approx([80 / 3, 110 / 3, 39.1667],
                                                                      abs=1e-4)  # fmt: skip
    # (averaging cumulative revenue over the cohorts that reached each month would fall from
    # 36.67 to (30 + 35) / 2 = 32.5 at month 2)
    # month 2's interval: z_A = 10/3 + 20/3 = 10, z_B = 30/3 + 5/2 = 12.5, z_C = 50/3;
    # January's variance of z is 3.125, times its 2 customers: 6.25, SD 2.5
    half = 1.959964 * 2.5
    assert got.loc[2, "ci_low"] == pytest.approx(39.1667 - half, abs=1e-4)
    assert got.loc[2, "ci_high"] == pytest.approx(39.1667 + half, abs=1e-4)


def test_ltv_curve_intervals_cover_the_true_curve():
    """1,000 worlds (one group each) of four monthly cohorts of 150 customers who spend
    Gamma(1, mu_0) in their first month, then in each later month k half of them spend
    Gamma(1, 2 mu_k) (mean mu_k): each month's interval covers sum(mu_0..mu_k) at about the
    nominal 95%."""
    from experiments.cohorts import ltv_curves

    mu = np.array([30.0, 8.0, 6.0, 5.0])
    worlds = 1000
    rng = np.random.default_rng(12)
    cohort, k = np.array([(c, k) for c in range(4) for k in range(4 - c)]).T
    cells = pd.DataFrame({"cohort": np.repeat(cohort, 150), "k": np.repeat(k, 150),
                          "i": np.tile(np.arange(150), len(cohort))})  # fmt: skip
    cells = cells.loc[cells.index.repeat(worlds)].reset_index(drop=True)
    cells["world"] = np.tile(np.arange(worlds), len(cells) // worlds)
    spend = rng.gamma(1.0, mu[cells.k]) * np.where(cells.k == 0, 1, 2)
    keep = (cells.k == 0) | (rng.random(len(cells)) < 0.5)
    orders = pd.DataFrame({
        "group": cells.world.astype(str),
        "customer_id": cells.cohort.astype(str) + "-" + cells.i.astype(str),
        "ordered_at": pd.to_datetime({"year": 2026, "month": cells.cohort + cells.k + 1,
                                      "day": 10}),
        "revenue": spend,
    })[keep]  # fmt: skip
    curves = ltv_curves(orders, through="2026-05-20T00:00:00Z")
    truth = mu.cumsum()[curves.months_since_first_order]
    covered = (curves.ci_low <= truth) & (truth <= curves.ci_high)
    by_month = covered.groupby(curves.months_since_first_order).mean()
    print("coverage by month since first order:", by_month.round(3).to_dict())
    assert len(curves) == 4 * worlds
    assert ((by_month >= 0.93) & (by_month <= 0.97)).all()
