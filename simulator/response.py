"""How simulated customers respond to the send runs, with a known true causal effect.

For each unit (a customer's first ``sent`` or ``held_out`` decision per campaign) the
customer orders within the attribution window with probability ``baseline_rate``, multiplied
by ``1 + effects[campaign]`` when the unit is in the treatment arm and its message went out
(submitted, accepted or delivered); holdouts, the global control and undelivered messages get
no effect. So the true intent-to-treat effect of a campaign whose messages all went out is
``baseline_rate * effect`` absolute and ``effect`` relative. An effect may differ by the
lifecycle stage the decision saw (``{"winback": {"lapsed": 0.5, "active": 0.0}}``).

The orders are landing files (``orders/<day>.resp-<tag>.csv``) that the next pipeline run
ingests like any other, so the marts the analysis reads are built by the features build
(where a buyer becomes ``active`` again: a treatment moves customers between segments after
the decision). An order is one line of the reminded product when the decision names one,
else of a product drawn from the catalog.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# campaign -> true relative effect, or lifecycle stage at decision -> effect
Effects = dict[str, float | dict[str, float]]


def units_of(con, run_id: str | None = None) -> pd.DataFrame:
    """Each campaign's units (first sent, held-out or not-targeted decision per customer) of
    one run, or of every real run, with whether its message went out."""
    where = "AND d.run_id = $run" if run_id else ""
    return con.execute(
        f"""SELECT d.campaign_id, d.customer_id, d.arm, d.as_of AS decided_at, d.product_id,
            d.lifecycle_stage, d.loyalty_tier, d.phone_e164,
            coalesce(m.status IN ('submitted', 'accepted', 'delivered'), false) AS went_out
        FROM sends.decisions AS d JOIN sends.runs AS r USING (run_id)
        LEFT JOIN sends.messages AS m ON m.message_id = d.message_id AND d.outcome = 'sent'
        WHERE NOT r.dry_run AND d.outcome IN ('sent', 'held_out', 'not_targeted') {where}
        QUALIFY row_number() OVER (PARTITION BY d.campaign_id, d.customer_id
                                   ORDER BY d.as_of) = 1
        ORDER BY d.campaign_id, d.customer_id""",
        {"run": run_id} if run_id else {},
    ).df()


def _true_lift(units: pd.DataFrame, effects: Effects) -> np.ndarray:
    """Each unit's true relative effect: its campaign's, or its campaign's for the lifecycle
    stage the decision saw (0 for a campaign or stage without one)."""
    flat = {c: float(e) for c, e in effects.items() if not isinstance(e, dict)}
    staged = {(c, stage): float(e) for c, by_stage in effects.items()
              if isinstance(by_stage, dict) for stage, e in by_stage.items()}  # fmt: skip
    lift = units["campaign_id"].map(flat).to_numpy(float)
    if staged:
        keys = pd.MultiIndex.from_arrays([units["campaign_id"], units["lifecycle_stage"]])
        lift = np.where(np.isnan(lift), pd.Series(staged).reindex(keys).to_numpy(float), lift)
    return np.nan_to_num(lift, nan=0.0)


def _buys(units: pd.DataFrame, effects: Effects, baseline_rate: float, rng):
    lift = _true_lift(units, effects)
    treated = (units["arm"] == "treatment").to_numpy() & units["went_out"].to_numpy()
    p = baseline_rate * np.where(treated, 1 + lift, 1.0)
    return rng.random(len(units)) < np.clip(p, 0, 1)


ORDER_COLUMNS = [
    "order_id", "order_line_no", "customer_id", "product_id", "quantity", "unit_price",
    "discount_amount", "currency", "status", "channel", "ordered_at",
]  # fmt: skip


def respond(
    con,
    landing: Path,
    effects: Effects,
    *,
    baseline_rate: float,
    seed: int,
    run_id: str | None = None,
    window_days: int = 7,
) -> int:
    """Orders the units of one send run (of every run without ``run_id``) place in the
    following days, as landing files; returns how many were written."""
    units = units_of(con, run_id)
    if units.empty:
        return 0
    rng = np.random.default_rng(seed)
    buys = _buys(units, effects, baseline_rate, rng)
    return write_orders(con, landing, units[buys], run_id or f"seed{seed}", rng, window_days)


def write_orders(con, landing: Path, chosen: pd.DataFrame, tag: str, rng,
                 window_days: int = 7) -> int:  # fmt: skip
    """One order per chosen unit within its window after the decision, as landing files
    ``orders/<day>.resp-<tag>.csv``: a line of the decision's product, else of a product
    drawn from the catalog, at its list price."""
    chosen = chosen.reset_index(drop=True)
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
            "order_id": [f"R{tag}-{i:06d}" for i in range(len(chosen))],
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
        part.to_csv(folder / f"{day}.resp-{tag}.csv", index=False)
    return len(orders)
