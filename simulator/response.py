"""How simulated customers respond to the send runs, with a known true causal effect.

For each unit (a customer's first ``sent`` or ``held_out`` decision per campaign) the
customer orders within the attribution window with probability ``baseline_rate``, multiplied
by ``1 + effects[campaign]`` when the unit is in the treatment arm and its message went out
(submitted, accepted or delivered); holdouts, the global control and undelivered messages get
no effect. So the true intent-to-treat effect of a campaign whose messages all went out is
``baseline_rate * effect`` absolute and ``effect`` relative. Each customer also has pre-period
spend, independent of the arm (what CUPED uses). Orders are written to ``marts.fct_orders``
as the nightly build would publish them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def respond(
    con,
    effects: dict[str, float],
    *,
    baseline_rate: float,
    seed: int,
    window_days: int = 7,
    order_value: tuple[float, float] = (2.0, 20.0),  # gamma shape, scale: mean 40
) -> int:
    """Draw the orders; returns how many were written."""
    units = con.execute(
        """SELECT d.campaign_id, d.customer_id, d.arm, d.as_of AS decided_at,
            coalesce(m.status IN ('submitted', 'accepted', 'delivered'), false) AS went_out
        FROM sends.decisions AS d JOIN sends.runs AS r USING (run_id)
        LEFT JOIN sends.messages AS m ON m.message_id = d.message_id AND d.outcome = 'sent'
        WHERE NOT r.dry_run AND d.outcome IN ('sent', 'held_out')
        QUALIFY row_number() OVER (PARTITION BY d.campaign_id, d.customer_id
                                   ORDER BY d.as_of) = 1"""
    ).df()
    rng = np.random.default_rng(seed)
    n = len(units)
    lift = units["campaign_id"].map(effects).fillna(0.0).to_numpy()
    treated = (units["arm"] == "treatment").to_numpy() & units["went_out"].to_numpy()
    p = baseline_rate * np.where(treated, 1 + lift, 1.0)
    buys = rng.random(n) < p
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
    con.execute("""CREATE TABLE IF NOT EXISTS marts.fct_orders (order_id VARCHAR,
        customer_id VARCHAR, ordered_at TIMESTAMP, net_revenue DOUBLE, order_status VARCHAR)""")
    con.execute("""CREATE TABLE IF NOT EXISTS marts.fct_order_lines (customer_id VARCHAR,
        product_id VARCHAR, ordered_at TIMESTAMP, is_cancelled INTEGER)""")
    con.register("_orders", orders)
    con.execute("""INSERT INTO marts.fct_orders (order_id, customer_id, ordered_at,
        net_revenue, order_status) SELECT order_id, customer_id, ordered_at, net_revenue,
        order_status FROM _orders""")
    con.unregister("_orders")
    return len(orders)
