"""Small shops side by side, as landing files, for closed-loop experiments.

``worlds`` shops of ``customers`` each, told apart by ``region`` (``W000``, ``W001``, ...) so
one campaign per shop can target it, all in New York and opted in to marketing texts more
than a year before ``decided_at``. Their order history puts them where the features build
should: loyalty tiers rotate bronze, silver, gold, platinum (trailing-year spend of 120, 800,
2,000 and 5,200) and lifecycle stages active, lapsed every four customers, so each tier holds
both. An active customer's last order falls in the 30 days before ``decided_at`` (the
pre-period a decision records); a lapsed customer's last order is 250 days old.

The files go through ingest and dbt like any shop's, so the marts the experiment reads are
the ones the features build publishes: many worlds cost one load and one build, not one
each. Written in DuckDB, one file per source and day; the same arguments write the same
bytes.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb

PRODUCT = ("TRIAL-01", "House Blend Coffee 1kg", "coffee", 30, 24.0)
TIER_ORDER_VALUE = (60.0, 400.0, 1000.0, 2600.0)  # two orders a year: 120, 800, 2,000, 5,200
MAX_CUSTOMERS = 7_999_999  # New York numbers +1 212 2xx-xxxx and up: 7 digits after 212
FIRST_NAMES = ("Emma", "Noah", "Zoë", "Łukasz", "Mia", "Jürgen", "Ana", "Omar")
CONSENT_TEXT = (
    "Yes, send me recurring automated marketing texts at this number. Consent is not a "
    "condition of purchase. Msg & data rates may apply. Reply STOP to cancel."
)


def region_of(world: int) -> str:
    """The ``region`` that marks a world's customers (a campaign's audience condition)."""
    return f"W{world:03d}"


def write_experiment_world(
    landing: Path, decided_at: datetime, *, worlds: int = 1, customers: int = 1600
) -> dict[str, int]:
    """Landing files for ``worlds`` shops of ``customers`` each; returns rows per source."""
    if not 0 < worlds <= 1000 or not 0 < worlds * customers <= MAX_CUSTOMERS:
        raise ValueError(f"at most 1,000 worlds and {MAX_CUSTOMERS:,} customers in all")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    at = decided_at.replace(tzinfo=None)
    con.execute(_PEOPLE, {"worlds": worlds, "n": customers, "at": at})
    rows = {}
    for source, select in _SOURCES.items():
        params = {"at": at} if "$at" in select else {}
        con.execute(f"CREATE TEMP TABLE {source} AS {select}", params)
        rows[source] = _write_by_day(con, landing / source, source)
    con.close()
    return rows


# one row per customer: ids, phone, the value of its orders by tier (i % 4) and their days by
# lifecycle stage ((i // 4) % 2: active, lapsed); hash() draws the times, so the same
# arguments give the same world
_PEOPLE = f"""
CREATE TEMP TABLE people AS
SELECT w, i, printf('W%03dC%06d', w, i) AS customer_id, printf('W%03d', w) AS region,
    printf('+1212%07d', 2000000 + w * $n + i) AS phone,
    {list(FIRST_NAMES)}[1 + i % {len(FIRST_NAMES)}] AS first_name,
    $at - INTERVAL 400 DAY + to_seconds(CAST(hash(w, i, 'created') % 86400 AS BIGINT))
        AS created_at,
    {list(TIER_ORDER_VALUE)}[1 + i % 4] AS order_value,
    CASE WHEN (i // 4) % 2 = 1
        THEN [$at - INTERVAL 300 DAY, $at - INTERVAL 250 DAY]
        ELSE [$at - INTERVAL 200 DAY,
              date_trunc('day', $at) - to_days(1 + CAST(hash(w, i, 'pre') % 29 AS INT))]
    END AS order_days
FROM range($worlds) AS ws(w), range(1, $n + 1) AS cs(i)
"""

_SOURCES = {
    "products": f"""
        SELECT '{PRODUCT[0]}' AS product_id, '{PRODUCT[1]}' AS name, '{PRODUCT[2]}' AS category,
            {PRODUCT[3]} AS replenishment_days, {PRODUCT[4]} AS price, 'USD' AS currency,
            $at - INTERVAL 500 DAY AS launched_at""",
    "customers": """
        SELECT customer_id, first_name, phone AS phone_e164, 'US' AS country, region,
            'America/New_York' AS time_zone, 'en' AS language, created_at
        FROM people""",
    "consent": f"""
        SELECT 'K' || customer_id AS consent_event_id, customer_id, phone AS phone_e164,
            'sms' AS channel, 'marketing' AS category, 'opt_in' AS action,
            'web_form' AS source, '{CONSENT_TEXT}' AS consent_text, NULL AS keyword,
            created_at + INTERVAL 10 DAY AS occurred_at
        FROM people""",
    "orders": f"""
        SELECT printf('O%s-%d', customer_id, k) AS order_id, 1 AS order_line_no, customer_id,
            '{PRODUCT[0]}' AS product_id, 1 AS quantity, order_value AS unit_price,
            0.0 AS discount_amount, 'USD' AS currency, 'completed' AS status, 'web' AS channel,
            order_days[k] + to_seconds(CAST(hash(w, i, k) % 86400 AS BIGINT)) AS ordered_at
        FROM people, range(1, 3) AS ks(k)""",
}

_DAY_COLUMN = {"products": "launched_at", "customers": "created_at", "consent": "occurred_at",
               "orders": "ordered_at"}  # fmt: skip


def _write_by_day(con, folder: Path, source: str) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    day_column = _DAY_COLUMN[source]
    columns = [row[0] for row in con.execute(f"DESCRIBE {source}").fetchall()]
    printed = ", ".join(
        f"strftime({c}, '%Y-%m-%dT%H:%M:%SZ') AS {c}" if c.endswith("_at") else c for c in columns
    )
    days = con.execute(f"SELECT DISTINCT CAST({day_column} AS DATE) FROM {source}").fetchall()
    for (day,) in days:
        target = folder / f"{day:%Y-%m-%d}.csv"
        con.execute(
            f"""COPY (SELECT {printed} FROM {source} WHERE CAST({day_column} AS DATE) = $day
                ORDER BY ALL) TO '{target}' (HEADER, DELIMITER ',')""",
            {"day": day},
        )
    return con.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
