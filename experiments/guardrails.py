"""Guardrail metrics per campaign: is a campaign annoying people or wasting money, whatever
its lift? Writes ``experiments.campaign_guardrails`` as of a time (each date kept in
``experiments.campaign_guardrails_history``).

Per campaign, over its messages handed to a gateway by ``as_of``:
  messages           handed over (a message that never went out is not counted)
  delivery_rate      delivered / messages with a settled status (delivered, undelivered,
                     rejected, or sent with no final receipt in time); messages still waiting
                     for their receipt are left out
  opt_out_rate_24h   messages followed by an SMS opt-out of their number within 24 hours /
                     messages handed over at least 24 hours before ``as_of``
  opt_out_rate_7d    the same within 7 days
  cost_per_message   estimated cost / messages
An opt-out (a STOP-type reply, or an opt-out from any other source in the warehouse) is
blamed on the last message its number got before it, so two campaigns never share one.

The program's norm is the same rate over every other campaign's messages. A rate is flagged
(``*_flag``) when it is worse than the norm by a one-sided two-proportion z-test at
``FLAG_ALPHA``; a campaign alone in its program has no norm and is never flagged.
"""

from __future__ import annotations

import math
from datetime import datetime

import pandas as pd
from scipy import stats

from experiments.history import keep_history
from send_jobs.ledger import FINAL

FLAG_ALPHA = 0.05
SETTLED = tuple(s for s in (*FINAL, "unconfirmed") if s not in ("expired", "cancelled"))
WENT_OUT = ("submitted", "accepted", *SETTLED)
# rate -> (numerator, denominator, worse when the rate is "higher" or "lower")
RATES = {
    "delivery_rate": ("delivered", "settled", "lower"),
    "opt_out_rate_24h": ("opt_outs_24h", "exposed_24h", "higher"),
    "opt_out_rate_7d": ("opt_outs_7d", "exposed_7d", "higher"),
}

COUNTS_SQL = f"""
WITH msgs AS (
    SELECT message_id, campaign_id, phone_e164, status, coalesce(estimated_cost, 0) AS cost,
        coalesce(handed_over_at, as_of) AS sent_at
    FROM sends.messages
    WHERE status IN {WENT_OUT} AND coalesce(handed_over_at, as_of) <= $as_of),
opt_outs AS (
    SELECT phone_e164, occurred_at FROM sends.inbound
    WHERE action = 'opt_out' AND occurred_at <= $as_of
    UNION
    SELECT phone_e164, occurred_at FROM raw.consent
    WHERE channel = 'sms' AND action = 'opt_out' AND occurred_at <= $as_of),
blamed AS (
    SELECT m.message_id, o.occurred_at - m.sent_at AS after
    FROM opt_outs AS o JOIN msgs AS m ON m.phone_e164 = o.phone_e164
        AND m.sent_at <= o.occurred_at AND o.occurred_at <= m.sent_at + INTERVAL 7 DAY
    QUALIFY row_number() OVER (PARTITION BY o.phone_e164, o.occurred_at
                               ORDER BY m.sent_at DESC, m.message_id DESC) = 1),
per_message AS (
    SELECT m.*, min(b.after) AS first_opt_out_after
    FROM msgs AS m LEFT JOIN blamed AS b USING (message_id)
    GROUP BY ALL)
SELECT campaign_id,
    count(*) AS messages,
    count(*) FILTER (WHERE status = 'delivered') AS delivered,
    count(*) FILTER (WHERE status IN {SETTLED}) AS settled,
    count(*) FILTER (WHERE sent_at + INTERVAL 24 HOUR <= $as_of) AS exposed_24h,
    count(*) FILTER (WHERE sent_at + INTERVAL 24 HOUR <= $as_of
                       AND first_opt_out_after <= INTERVAL 24 HOUR) AS opt_outs_24h,
    count(*) FILTER (WHERE sent_at + INTERVAL 7 DAY <= $as_of) AS exposed_7d,
    count(*) FILTER (WHERE sent_at + INTERVAL 7 DAY <= $as_of
                       AND first_opt_out_after IS NOT NULL) AS opt_outs_7d,
    sum(cost) AS cost
FROM per_message GROUP BY 1 ORDER BY 1"""


def worse_than_norm_p(hits: int, n: int, norm_hits: int, norm_n: int, worse: str) -> float:
    """One-sided p-value of the two-proportion z-test (pooled variance) that the campaign's
    rate hits/n is worse than the norm's; NaN when either side has no messages."""
    if n == 0 or norm_n == 0:
        return math.nan
    pooled = (hits + norm_hits) / (n + norm_n)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / norm_n))
    diff = hits / n - norm_hits / norm_n
    if se == 0:
        return 1.0
    z = diff / se if worse == "higher" else -diff / se
    return float(stats.norm.sf(z))


def flagged_rates(row) -> list[tuple[str, float, float]]:
    """(rate, the campaign's value, the program's norm) of each flagged rate of a row of
    ``experiments.campaign_guardrails``."""
    return [(rate, row[rate], row[f"{rate}_norm"]) for rate in RATES if bool(row[f"{rate}_flag"])]


def campaign_guardrails(counts: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """Rates, norms and flags from the per-campaign counts of ``COUNTS_SQL``."""
    out = counts.copy()
    for rate, (hits, n, worse) in RATES.items():
        out[rate] = out[hits] / out[n].where(out[n] > 0)
        norm_hits, norm_n = out[hits].sum() - out[hits], out[n].sum() - out[n]
        out[f"{rate}_norm"] = norm_hits / norm_n.where(norm_n > 0)
        p = [
            worse_than_norm_p(int(h), int(k), int(nh), int(nk), worse)
            for h, k, nh, nk in zip(out[hits], out[n], norm_hits, norm_n, strict=True)
        ]
        out[f"{rate}_flag"] = [bool(v < FLAG_ALPHA) for v in p]
    out["cost_per_message"] = out["cost"] / out["messages"].where(out["messages"] > 0)
    out["as_of"] = as_of.replace(tzinfo=None)
    return out


def measure_guardrails(con, as_of: datetime) -> pd.DataFrame:
    """Write ``experiments.campaign_guardrails`` as of ``as_of``; returns it."""
    con.execute("CREATE SCHEMA IF NOT EXISTS experiments")
    counts = con.execute(COUNTS_SQL, {"as_of": as_of.replace(tzinfo=None)}).df()
    table = campaign_guardrails(counts, as_of)
    con.register("_guardrails", table)
    con.execute(
        "CREATE OR REPLACE TABLE experiments.campaign_guardrails AS SELECT * FROM _guardrails"
    )
    con.unregister("_guardrails")
    keep_history(con, table, "campaign_guardrails", as_of)
    return table
