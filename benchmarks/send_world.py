"""A warehouse-level world for the send side, built in SQL in a second: n customers in New
York, every one opted in to marketing a year before 2026, in the audience of a campaign over
all customers; names mix GSM-7, accents and emoji (UCS-2) and blanks (fallbacks); loyalty tiers
rotate bronze, silver, gold, platinum, and lifecycle stages active, lapsed every four customers
(so each tier holds both). Used by the send benchmarks and the coverage test, where
the full simulator would be slower than what is measured.
"""

from __future__ import annotations

from warehouse.contract import create_marts_sql

SQL = """
CREATE SCHEMA raw;
INSERT INTO marts.dim_customers BY NAME
SELECT printf('C%08d', i) AS customer_id, printf('+1212%07d', i) AS phone_e164,
    'US' AS country, 'NY' AS region, 'America/New_York' AS time_zone,
    ['Emma', 'Noah', 'Zoë', 'Łukasz', NULL, 'Mia 🌸', 'Jürgen', 'D''Arcy'][1 + i % 8]
        AS first_name,
    ['bronze', 'silver', 'gold', 'platinum'][1 + i % 4] AS loyalty_tier,
    (i % 5000) AS loyalty_points, 'coffee' AS top_category,
    ['active', 'lapsed'][1 + (i // 4) % 2] AS lifecycle_stage,
    'loyal' AS rfm_segment, 1 + i % 7 AS orders_count, 100.0 + i % 900 AS lifetime_revenue,
    'en' AS language
FROM range(1, {n} + 1) AS t(i);
CREATE TABLE raw.consent AS
SELECT printf('K%09d', i) AS consent_event_id, printf('C%08d', i) AS customer_id,
    printf('+1212%07d', i) AS phone_e164, 'sms' AS channel, 'marketing' AS category,
    'opt_in' AS action, TIMESTAMP '2025-01-01' AS occurred_at
FROM range(1, {n} + 1) AS t(i);
CREATE TABLE raw.orders (customer_id VARCHAR, product_id VARCHAR, status VARCHAR,
    ordered_at TIMESTAMP);
"""


def build_send_world(con, n: int) -> None:
    """The world in ``con``: the marts as dbt's contract types them (empty but
    ``dim_customers``), and the raw tables the send jobs read."""
    con.execute(create_marts_sql())
    con.execute(SQL.format(n=int(n)))
