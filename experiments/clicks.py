"""Click-through per campaign and per variant: how many of the texts with a tracked link had
it tapped. Writes ``experiments.click_through`` as of a time (each date kept in
``experiments.click_through_history``).

Over the messages with a link handed to a gateway by ``as_of``:
  messages        handed over
  clicked         messages whose link a person opened by ``as_of`` (``sends.clicks``; link
                  preview bots do not count); several taps on one link count once
  clicks          every tap by a person, repeats included
  preview_only    messages opened only by a link-preview bot (a chat app unfurling it)
  ctr             clicked / messages, with the Wilson interval and the always-valid one
                  (``experiments.stats.rate_interval``)
One row per campaign (``variant`` = ``all``) and one per variant of a campaign with several.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import pandas as pd

from experiments.guardrails import WENT_OUT
from experiments.history import keep_history
from experiments.stats import SEQUENTIAL_TUNING, rate_interval

COUNTS_SQL = f"""
WITH msgs AS (
    SELECT m.message_id, m.campaign_id, coalesce(d.variant, '?') AS variant
    FROM sends.messages AS m
    LEFT JOIN (SELECT DISTINCT message_id, variant FROM sends.decisions
               WHERE message_id IS NOT NULL) AS d USING (message_id)
    WHERE m.link_code IS NOT NULL AND m.status IN {WENT_OUT}
      AND coalesce(m.handed_over_at, m.as_of) <= $as_of),
per_message AS (
    SELECT m.*,
        count(c.click_id) FILTER (WHERE c.ua_class <> 'preview') AS clicks,
        count(c.click_id) FILTER (WHERE c.ua_class = 'preview') AS previews
    FROM msgs AS m
    LEFT JOIN sends.clicks AS c ON c.message_id = m.message_id AND c.clicked_at <= $as_of
    GROUP BY ALL)
SELECT campaign_id, variant,
    count(*) AS messages,
    count(*) FILTER (WHERE clicks > 0) AS clicked,
    sum(clicks) AS clicks,
    count(*) FILTER (WHERE clicks = 0 AND previews > 0) AS preview_only
FROM per_message GROUP BY GROUPING SETS ((campaign_id), (campaign_id, variant))
ORDER BY campaign_id, variant NULLS FIRST"""


def click_through(counts: pd.DataFrame, as_of: datetime,
                  tuning: Mapping[str, float] | None = None) -> pd.DataFrame:  # fmt: skip
    """Rates and intervals from the counts of ``COUNTS_SQL``; a campaign's variants are kept
    only when it has more than one."""
    out = counts.copy()
    out["variant"] = out["variant"].fillna("all")
    variants = out[out.variant != "all"].groupby("campaign_id").size()
    several = set(variants[variants > 1].index)
    out = out[(out.variant == "all") | out.campaign_id.isin(several)].reset_index(drop=True)
    tuning = tuning or {}
    rates = [
        rate_interval(int(h), int(n), tuning=tuning.get(c, SEQUENTIAL_TUNING))
        for c, h, n in zip(out.campaign_id, out.clicked, out.messages, strict=True)
    ]
    for column in ("rate", "ci_low", "ci_high", "seq_ci_low", "seq_ci_high"):
        name = "ctr" if column == "rate" else f"ctr_{column}"
        out[name] = [getattr(r, column) for r in rates]
    out["as_of"] = as_of.replace(tzinfo=None)
    return out.astype({"messages": "int64", "clicked": "int64", "clicks": "int64",
                       "preview_only": "int64"})  # fmt: skip


def measure_clicks(con, as_of: datetime,
                   tuning: Mapping[str, float] | None = None) -> pd.DataFrame:  # fmt: skip
    """Write ``experiments.click_through`` as of ``as_of``; returns it."""
    con.execute("CREATE SCHEMA IF NOT EXISTS experiments")
    counts = con.execute(COUNTS_SQL, {"as_of": as_of.replace(tzinfo=None)}).df()
    table = click_through(counts, as_of, tuning)
    con.register("_click_through", table)
    con.execute("CREATE OR REPLACE TABLE experiments.click_through AS SELECT * FROM _click_through")
    con.unregister("_click_through")
    keep_history(con, table, "click_through", as_of)
    return table
