"""How simulated customers respond to the send runs, with a known true causal effect.

For each unit (a customer's first ``sent`` or ``held_out`` decision per campaign) the
customer orders within the attribution window with probability ``baseline_rate``, multiplied
by ``1 + effects[campaign]`` when the unit is in the treatment arm and its message went out
(submitted, accepted or delivered); holdouts, the global control and undelivered messages get
no effect. So the true intent-to-treat effect of a campaign whose messages all went out is
``baseline_rate * effect`` absolute and ``effect`` relative. An effect may differ by the
lifecycle stage the decision saw (``{"winback": {"lapsed": 0.5, "active": 0.0}}``).

``respond`` (small worlds, the coverage test) also draws pre-period spend independent of the
arm, and writes straight to ``marts.fct_orders`` as the nightly build would publish it (a
stand-in for that build: two hundred dbt builds per test would take an hour); like that
build it makes every customer who ordered ``active`` in ``marts.dim_customers``, so a
treatment moves customers between segments after the decision. The pre-period orders land
after the decisions (late history the decisions did not see).
``respond_to_run`` (the closed-loop demo) writes the orders as landing files
(``orders/<day>.resp-<run>.csv``) that the next pipeline run ingests like any other; an
order is one line of the reminded product when the decision names one, else of a product
drawn from the catalog.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from warehouse.contract import create_marts_sql

# campaign -> true relative effect, or lifecycle stage at decision -> effect
Effects = dict[str, float | dict[str, float]]


def respond(
    con,
    effects: Effects,
    *,
    baseline_rate: float,
    seed: int,
    window_days: int = 7,
    order_value: tuple[float, float] = (2.0, 20.0),  # gamma shape, scale: mean 40
) -> int:
    """Draw the orders; returns how many were written."""
    units = _units(con)
    rng = np.random.default_rng(seed)
    n = len(units)
    buys = _buys(units, effects, baseline_rate, rng)
    window = pd.to_timedelta(rng.uniform(0.05, window_days - 0.05, n), unit="D")
    pre = rng.random(n) < 0.5
    pre_at = pd.to_timedelta(rng.uniform(1, 29, n), unit="D")
    shape, scale = order_value
    orders = pd.concat(
        [
            pd.DataFrame({
                "order_id": [f"R{seed}-{i}" for i in np.flatnonzero(buys)],
                "customer_id": units["customer_id"].to_numpy()[buys],
                "ordered_at": (units["decided_at"] + window).to_numpy()[buys],
                "net_revenue": rng.gamma(shape, scale, int(buys.sum())).round(2),
            }),
            pd.DataFrame({
                "order_id": [f"B{seed}-{i}" for i in np.flatnonzero(pre)],
                "customer_id": units["customer_id"].to_numpy()[pre],
                "ordered_at": (units["decided_at"] - pre_at).to_numpy()[pre],
                "net_revenue": rng.gamma(shape, scale, int(pre.sum())).round(2),
            }),
        ],
        ignore_index=True,
    )  # fmt: skip
    orders["order_status"] = "completed"
    con.register("_buyers", units[buys][["customer_id"]])
    con.execute(create_marts_sql())  # the marts as the contract types them, if missing
    con.register("_orders", orders)
    con.execute("""INSERT INTO marts.fct_orders (order_id, customer_id, ordered_at,
        net_revenue, order_status) SELECT order_id, customer_id, ordered_at, net_revenue,
        order_status FROM _orders""")
    con.unregister("_orders")
    # the next nightly build: a customer who ordered after the decision is active again
    con.execute("""UPDATE marts.dim_customers SET lifecycle_stage = 'active'
        WHERE customer_id IN (SELECT customer_id FROM _buyers)""")
    con.unregister("_buyers")
    return len(orders)


def _units(con, run_id: str | None = None) -> pd.DataFrame:
    where = "AND d.run_id = $run" if run_id else ""
    return con.execute(
        f"""SELECT d.campaign_id, d.customer_id, d.arm, d.as_of AS decided_at, d.product_id,
            d.lifecycle_stage,
            coalesce(m.status IN ('submitted', 'accepted', 'delivered'), false) AS went_out
        FROM sends.decisions AS d JOIN sends.runs AS r USING (run_id)
        LEFT JOIN sends.messages AS m ON m.message_id = d.message_id AND d.outcome = 'sent'
        WHERE NOT r.dry_run AND d.outcome IN ('sent', 'held_out') {where}
        QUALIFY row_number() OVER (PARTITION BY d.campaign_id, d.customer_id
                                   ORDER BY d.as_of) = 1
        ORDER BY d.campaign_id, d.customer_id""",
        {"run": run_id} if run_id else {},
    ).df()


def _true_lift(units: pd.DataFrame, effects: Effects) -> np.ndarray:
    """Each unit's true relative effect: its campaign's, or its campaign's for the lifecycle
    stage the decision saw."""
    lift = np.zeros(len(units))
    for campaign_id, effect in effects.items():
        mine = (units["campaign_id"] == campaign_id).to_numpy()
        if isinstance(effect, dict):
            by_stage = units["lifecycle_stage"].map(effect).fillna(0.0).to_numpy()
            lift = np.where(mine, by_stage, lift)
        else:
            lift = np.where(mine, float(effect), lift)
    return lift


def _buys(units: pd.DataFrame, effects: Effects, baseline_rate: float, rng):
    lift = _true_lift(units, effects)
    treated = (units["arm"] == "treatment").to_numpy() & units["went_out"].to_numpy()
    p = baseline_rate * np.where(treated, 1 + lift, 1.0)
    return rng.random(len(units)) < np.clip(p, 0, 1)


ORDER_COLUMNS = [
    "order_id", "order_line_no", "customer_id", "product_id", "quantity", "unit_price",
    "discount_amount", "currency", "status", "channel", "ordered_at",
]  # fmt: skip


def respond_to_run(
    con,
    run_id: str,
    landing,
    effects: Effects,
    *,
    baseline_rate: float,
    seed: int,
    window_days: int = 7,
) -> int:
    """Orders the customers of one send run place in the following days, as landing files."""
    from pathlib import Path

    units = _units(con, run_id)
    if units.empty:
        return 0
    rng = np.random.default_rng(seed)
    buys = _buys(units, effects, baseline_rate, rng)
    chosen = units[buys].reset_index(drop=True)
    catalog = con.execute(
        "SELECT product_id, price FROM marts.dim_products ORDER BY product_id"
    ).df()
    prices = dict(zip(catalog.product_id, catalog.price.astype(float), strict=True))
    drawn = catalog.product_id.to_numpy()[rng.integers(0, len(catalog), len(chosen))]
    product = np.where(chosen["product_id"].notna(), chosen["product_id"], drawn)
    at = chosen["decided_at"] + pd.to_timedelta(
        rng.uniform(0.05, window_days - 0.05, len(chosen)), unit="D"
    )
    orders = pd.DataFrame(
        {
            "order_id": [f"R{run_id}-{i:06d}" for i in range(len(chosen))],
            "order_line_no": 1,
            "customer_id": chosen["customer_id"],
            "product_id": product,
            "quantity": 1,
            "unit_price": [f"{prices.get(p, 20.0):.2f}" for p in product],
            "discount_amount": "0.00",
            "currency": "USD",
            "status": "completed",
            "channel": "web",
            "ordered_at": at.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )[ORDER_COLUMNS]
    folder = Path(landing) / "orders"
    folder.mkdir(parents=True, exist_ok=True)
    for day, part in orders.groupby(at.dt.strftime("%Y-%m-%d")):
        part.to_csv(folder / f"{day}.resp-{run_id}.csv", index=False)
    return len(orders)
