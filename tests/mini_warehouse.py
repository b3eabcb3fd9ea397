"""A small hand-made warehouse for send-job rules: a real DuckDB file holding the mart and raw
columns the send jobs read, filled row by row so each test states exactly its situation."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import duckdb

from send_jobs.campaign_specs import load_program, parse_campaign
from warehouse.contract import create_marts_sql

# the marts exactly as dbt's contract types them; raw.* only the columns the send jobs read
RAW = """
CREATE SCHEMA raw;
CREATE TABLE raw.consent (consent_event_id VARCHAR, customer_id VARCHAR, phone_e164 VARCHAR,
    channel VARCHAR, category VARCHAR, action VARCHAR, occurred_at TIMESTAMP);
CREATE TABLE raw.orders (customer_id VARCHAR, product_id VARCHAR, status VARCHAR,
    ordered_at TIMESTAMP);
"""

# an order as the analysis reads it (marts.fct_orders' other columns left empty)
INSERT_ORDER = """INSERT INTO marts.fct_orders (order_id, customer_id, ordered_at, net_revenue,
    order_status) VALUES (?, ?, ?, ?, ?)"""

NY = {"country": "US", "region": "NY", "time_zone": "America/New_York"}
FL = {"country": "US", "region": "FL", "time_zone": "America/New_York"}
PARIS = {"country": "FR", "region": None, "time_zone": "Europe/Paris"}
LONDON = {"country": "GB", "region": None, "time_zone": "Europe/London"}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class MiniWarehouse:
    def __init__(self, path) -> None:
        self.con = duckdb.connect(str(path))
        self.con.execute(create_marts_sql())
        self.con.execute(RAW)
        self._n = 0

    def customer(
        self,
        customer_id: str,
        *,
        phone: str | None = None,
        where: dict = NY,
        first_name: str | None = "Ada",
        opted_in: dict | None = None,
        lifecycle_stage: str = "active",
        loyalty_tier: str = "bronze",
        orders_count: int = 3,
    ) -> str:
        """Add a customer; opted_in maps category -> opt-in time (default: marketing and
        transactional a year before 2026)."""
        self._n += 1
        phone = phone or f"+1212555{self._n:04d}"
        self.con.execute(
            "INSERT INTO marts.dim_customers (customer_id, phone_e164, country, region, "
            "time_zone, first_name, loyalty_tier, loyalty_points, top_category, "
            "lifecycle_stage, rfm_segment, orders_count, lifetime_revenue, language) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 120, 'coffee', ?, 'loyal', ?, 300.0, 'en')",
            [customer_id, phone, where["country"], where["region"], where["time_zone"],
             first_name, loyalty_tier, lifecycle_stage, orders_count],
        )  # fmt: skip
        if opted_in is None:
            opted_in = {
                "marketing": "2025-01-01T00:00:00Z",
                "transactional": "2025-01-01T00:00:00Z",
            }
        for category, at in opted_in.items():
            self.consent(customer_id, category, "opt_in", at)
        return customer_id

    def zones(self, customer_id: str, *zones: str, source: str = "phone") -> None:
        """The zones a customer may be in (marts.customer_time_zones), e.g. from the number."""
        for zone in zones:
            self.con.execute(
                "INSERT INTO marts.customer_time_zones (customer_id, time_zone, time_zone_source) "
                "VALUES (?, ?, ?)",
                [customer_id, zone, source],
            )

    def consent(
        self, customer_id: str, category: str, action: str, at: str, phone: str | None = None
    ) -> None:
        """An SMS consent event for ``phone`` (default: the customer's number)."""
        self._n += 1
        self.con.execute(
            "INSERT INTO raw.consent VALUES (?, ?, coalesce(?, (SELECT phone_e164 FROM "
            "marts.dim_customers WHERE customer_id = ?)), 'sms', ?, ?, ?)",
            [f"K{self._n:09d}", customer_id, phone, customer_id, category, action,
             utc(at).replace(tzinfo=None)],
        )  # fmt: skip

    def reply(self, phone: str, action: str | None, at: str, text: str | None = None) -> None:
        """A reply loaded from the receiver: ``action`` opt_out, opt_in or None (YES, HELP)."""
        from send_jobs.ledger import ensure_schema

        ensure_schema(self.con)
        self._n += 1
        when = utc(at).replace(tzinfo=None)
        intent = {"opt_out": "opt_out", "opt_in": "opt_in"}.get(action or "", "yes")
        self.con.execute(
            """INSERT INTO sends.inbound BY NAME SELECT ? AS inbound_id, ? AS phone_e164,
                ? AS text, ? AS intent, ? AS action, false AS flagged, ? AS occurred_at,
                ? AS received_at, 'replies' AS file, ? AS line""",
            [f"i{self._n}", phone, text or intent.upper(), intent, action, when, when, self._n],
        )

    def due(self, customer_id: str, product_id: str, name: str, as_of: str) -> None:
        at = utc(as_of).replace(tzinfo=None)
        self.con.execute(
            "INSERT INTO marts.dim_products (product_id, product_name, category, launched_at) "
            "SELECT ?, ?, 'coffee', TIMESTAMP '2024-01-01' "
            "WHERE ? NOT IN (SELECT product_id FROM marts.dim_products)",
            [product_id, name, product_id],
        )
        self.con.execute(
            "INSERT INTO marts.customer_replenishment (customer_id, product_id, next_due_at, "
            "window_opens_at, window_closes_at, last_purchased_at) VALUES (?, ?, ?, ?, ?, ?)",
            [customer_id, product_id, at, at - timedelta(days=3), at + timedelta(days=5),
             at - timedelta(days=30)],
        )  # fmt: skip

    def booking(self, customer_id: str, event_id: str, appointment_at: str, booked_at: str,
                store: str = "Northwind SoHo") -> None:  # fmt: skip
        """An appointment booked online (an explicit event, as marts.fct_events has it)."""
        self.con.execute(
            "INSERT INTO marts.fct_events (event_id, customer_id, event_type, occurred_at, "
            "provenance, channel, properties) VALUES (?, ?, 'appointment_booked', ?, "
            "'explicit', 'web', ?)",
            [event_id, customer_id, utc(booked_at).replace(tzinfo=None),
             f'{{"appointment_at": "{appointment_at}", "store_name": "{store}", '
             '"checklist": ["bring your current products"]}'],
        )  # fmt: skip

    def event(self, customer_id: str, event_id: str, event_type: str, at: str,
              provenance: str = "tracked") -> None:  # fmt: skip
        """A behavioural event as marts.fct_events has it (e.g. a checkout started)."""
        self.con.execute(
            "INSERT INTO marts.fct_events (event_id, customer_id, event_type, occurred_at, "
            "provenance, channel, properties) VALUES (?, ?, ?, ?, ?, 'web', '{}')",
            [event_id, customer_id, event_type, utc(at).replace(tzinfo=None), provenance],
        )

    def order(self, customer_id: str, product_id: str, at: str) -> None:
        self.con.execute(
            "INSERT INTO raw.orders VALUES (?, ?, 'completed', ?)",
            [customer_id, product_id, utc(at).replace(tzinfo=None)],
        )


def decided_customers(con, run_id: str) -> set[str]:
    """The customers a run made a decision for (its audience after the conditions)."""
    rows = con.execute("SELECT customer_id FROM sends.decisions WHERE run_id = ?", [run_id])
    return {r[0] for r in rows.fetchall()}


def program(**changes):
    return replace(load_program(), **changes)


def campaign(program_, **fields):
    spec = {
        "id": "promo",
        "name": "Promo",
        "category": "marketing",
        "priority": 10,
        "trigger": {"type": "customers"},
        "holdout_share": 0.0,
        "cooldown_days": 0,
        "variants": [{"id": "v1", "template": "Hi {{ first_name }}, news: {{ link }}"}],
    }
    spec.update(fields)
    return parse_campaign(spec, program_, f"<{spec['id']}>")
