"""Customers whom a text changes in different ways, for the uplift closed loop.

In the experiment worlds (``simulator/experiment_world.py``) a customer's kind follows from
what a decision sees, its lifecycle stage and loyalty tier:

- persuadables (lapsed gold and platinum): buy rarely, and often when texted;
- lost causes (lapsed bronze and silver): rarely buy, texted or not;
- sure things (active gold and platinum): buy as often texted or not;
- sleeping dogs (active bronze and silver): a text puts them off buying, and some opt out.

Each unit buys within the attribution window with its kind's probability, texted (its
message went out) or not, and a texted unit may opt out. A unit's draws depend only on the
seed and the customer (a hash), so two policies applied to copies of one world meet the same
customers with the same luck. Orders and opt-outs are landing files, like any shop's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.response import units_of, write_orders
from simulator.tables import COLUMNS

# kind: (buys untexted, buys texted, opts out when texted)
KINDS = {
    "persuadable": (0.03, 0.30, 0.002),
    "lost_cause": (0.01, 0.01, 0.010),
    "sure_thing": (0.40, 0.40, 0.002),
    "sleeping_dog": (0.20, 0.06, 0.080),
}


def kind_of(lifecycle_stage: pd.Series, loyalty_tier: pd.Series) -> np.ndarray:
    high = loyalty_tier.isin(["gold", "platinum"]).to_numpy()
    lapsed = lifecycle_stage.isin(["at_risk", "lapsed", "churned"]).to_numpy()
    return np.select(
        [lapsed & high, lapsed & ~high, ~lapsed & high],
        ["persuadable", "lost_cause", "sure_thing"],
        "sleeping_dog",
    )


def true_incremental_buying(kinds: np.ndarray) -> np.ndarray:
    """A text's true effect on the chance of buying, per unit."""
    return np.array([KINDS[k][1] - KINDS[k][0] for k in kinds])


def _luck(seed: int, customer_ids: pd.Series, purpose: str) -> np.ndarray:
    """Uniform draws in [0, 1) fixed by seed, customer and purpose."""
    return np.array([
        int.from_bytes(hashlib.sha256(f"{seed}:{purpose}:{c}".encode()).digest()[:8], "big")
        / 2**64
        for c in customer_ids
    ])  # fmt: skip


def respond_by_kind(con, landing: Path, *, seed: int, run_id: str,
                    window_days: int = 7) -> dict[str, int]:  # fmt: skip
    """The orders and opt-outs of one send run's units; how many of each were written."""
    units = units_of(con, run_id)
    if units.empty:
        return {"orders": 0, "opt_outs": 0}
    kinds = kind_of(units.lifecycle_stage, units.loyalty_tier)
    texted = (units.arm == "treatment").to_numpy() & units.went_out.to_numpy()
    untexted_p, texted_p, opt_out_p = (np.array([KINDS[k][i] for k in kinds]) for i in range(3))
    buys = _luck(seed, units.customer_id, "buy") < np.where(texted, texted_p, untexted_p)
    opts_out = texted & (_luck(seed, units.customer_id, "stop") < opt_out_p)
    rng = np.random.default_rng(seed)
    orders = write_orders(con, landing, units[buys], f"{run_id}-kinds", rng, window_days)
    _write_opt_outs(landing, units[opts_out], f"{run_id}-kinds", rng)
    return {"orders": orders, "opt_outs": int(opts_out.sum())}


def _write_opt_outs(landing: Path, units: pd.DataFrame, tag: str, rng) -> None:
    """A STOP within a day of the text, as the shop's consent log records it."""
    at = units.decided_at + pd.to_timedelta(rng.uniform(0.01, 1.0, len(units)), unit="D")
    rows = pd.DataFrame({
        "consent_event_id": [f"S{tag}-{i:06d}" for i in range(len(units))],
        "customer_id": units.customer_id.to_numpy(), "phone_e164": units.phone_e164.to_numpy(),
        "channel": "sms", "category": "marketing", "action": "opt_out", "source": "keyword",
        "consent_text": "", "keyword": "STOP",
        "occurred_at": at.dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(),
    })[COLUMNS["consent"]]  # fmt: skip
    folder = Path(landing) / "consent"
    folder.mkdir(parents=True, exist_ok=True)
    for day, part in rows.groupby(at.dt.strftime("%Y-%m-%d").to_numpy()):
        part.to_csv(folder / f"{day}.resp-{tag}.csv", index=False)
