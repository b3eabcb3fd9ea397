"""Records that change after they first land, as a shop's exports show them: each change is a
new version of the record with ``updated_at``, written in the file of the day it happened.

- Orders: a refunded line is sold first (completed) and refunded 2 to 19 days later; a
  cancelled order is placed first and cancelled 1 to 20 hours later. A change that would
  happen after the world's last day has not happened yet: the line stays completed.
- Customers: a share changes phone number at some moment after sign-up; half of them opt
  the new number in to SMS marketing an hour later (a consent event), the others never do.
- Products: a share changes price (+10%) at some moment after launch.

Everything is decided by hashes of the ids and the seed, set-based in DuckDB, so the output
stays byte-identical for the same arguments.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import numpy as np
import pyarrow as pa

from simulator.world import consent_vocab

TS_OUT = "strftime({c}, '%Y-%m-%dT%H:%M:%SZ')"
PER_MILLE = 1000


def _run(con: duckdb.DuckDBPyConnection, table: pa.Table, sql: str, **params) -> pa.Table:
    """``sql`` over ``table`` as ``printed``, with its row order as column ``n``: a
    parallel scan numbers rows in no fixed order, and the output must not change."""
    con.register("printed", table.append_column("n", pa.array(np.arange(table.num_rows))))
    try:
        return con.sql(sql, params=params or None).to_arrow_table().drop_columns(["kind", "n"])
    finally:
        con.unregister("printed")


def _columns(table: pa.Table, replace: dict[str, str]) -> str:
    return ", ".join(replace.get(c, f'"{c}"') for c in table.column_names if c != "day")


def orders_with_changes(con, table: pa.Table, end: str) -> pa.Table:
    """Refunds and cancellations as later versions of the lines they change."""
    final = "status IN ('refunded', 'cancelled')"
    sold = _columns(
        table, {"status": f"CASE WHEN {final} THEN 'completed' ELSE status END AS status"}
    )
    changed = _columns(table, {})
    sql = f"""
    WITH t AS (SELECT *, ordered_at::TIMESTAMP AS ts FROM printed),
    changes AS (
        SELECT *, CASE WHEN status = 'refunded'
                       THEN ts + to_days((2 + hash(order_id || order_line_no) % 18)::INTEGER)
                       ELSE ts + to_hours((1 + hash(order_id) % 20)::INTEGER) END AS changed_ts
        FROM t WHERE {final})
    SELECT {sold}, NULL::VARCHAR AS updated_at, day, 0 AS kind, n FROM t
    UNION ALL
    SELECT {changed}, {TS_OUT.format(c="changed_ts")}, (epoch(changed_ts) // 86400)::INTEGER,
           1, n
    FROM changes WHERE changed_ts < $end::TIMESTAMP
    ORDER BY day, kind, n"""
    return _run(con, table, sql, end=end)


def _changed_at(key: str, since: str, salt: str) -> str:
    """A moment between ``since`` (or the world's first day, if later) and its end, drawn
    from the key's hash."""
    since = f"greatest({since}, $start::TIMESTAMP)"
    span = f"greatest(1, epoch($end::TIMESTAMP) - epoch({since}))::BIGINT"
    return f"{since} + to_seconds((hash({key} || '{salt}' || $seed) % {span})::BIGINT)"


def _chosen(key: str, share: float, salt: str) -> str:
    return f"hash({key} || '{salt}' || $seed) % {PER_MILLE} < {round(share * PER_MILLE)}"


def _second_versions(
    con, table: pa.Table, key: str, since: str, changed: dict[str, str], chosen: dict
) -> pa.Table:
    """``table`` plus, for the keys ``chosen`` picks (``share``, ``salt``, ``start``, ``end``,
    ``seed``), a second version with the ``changed`` columns, at a moment after ``since``
    and before the world's end."""
    salt = chosen["salt"]
    sql = f"""
    WITH t AS (SELECT *, {since}::TIMESTAMP AS ts FROM printed),
    changes AS (
        SELECT *, {_changed_at(key, "ts", salt)} AS changed_ts
        FROM t WHERE {_chosen(key, chosen["share"], salt)} AND ts < $end::TIMESTAMP)
    SELECT {_columns(table, {})}, NULL::VARCHAR AS updated_at, day, 0 AS kind, n FROM t
    UNION ALL
    SELECT {_columns(table, {c: f"{expr} AS {c}" for c, expr in changed.items()})},
           {TS_OUT.format(c="changed_ts")}, (epoch(changed_ts) // 86400)::INTEGER, 1, n
    FROM changes
    ORDER BY day, kind, n"""
    return _run(con, table, sql, start=chosen["start"], end=chosen["end"],
                seed=str(chosen["seed"]))  # fmt: skip


def customers_with_changes(
    con, table: pa.Table, start: str, end: str, share: float, seed: int
) -> pa.Table:
    """A share of customers with a second version on a new phone number."""
    last_two = "lpad(((right(phone_e164, 2)::INTEGER + 37) % 100)::VARCHAR, 2, '0')"
    chosen = {"share": share, "salt": "phone", "start": start, "end": end, "seed": seed}
    return _second_versions(
        con, table, "customer_id", "created_at",
        {"phone_e164": f"left(phone_e164, -2) || {last_two}"}, chosen,
    )  # fmt: skip


def consent_for_new_phones(con, consent: pa.Table, customers: pa.Table, end: str) -> pa.Table:
    """The consent log plus an SMS marketing opt-in for half of the new numbers."""
    text = consent_vocab()["texts"][0]
    con.register("versions", customers)
    try:
        sql = f"""
        WITH opt_ins AS (
            SELECT 'KN' || substr(customer_id, 2) AS consent_event_id, customer_id,
                   phone_e164, 'sms' AS channel, 'marketing' AS category, 'opt_in' AS action,
                   'web_form' AS source, $text AS consent_text, NULL::VARCHAR AS keyword,
                   updated_at::TIMESTAMP + INTERVAL 1 HOUR AS ts
            FROM versions WHERE updated_at IS NOT NULL AND hash(customer_id) % 2 = 0)
        SELECT * EXCLUDE (n), 0 AS kind, n FROM printed
        UNION ALL
        SELECT consent_event_id, customer_id, phone_e164, channel, category, action, source,
               consent_text, keyword, {TS_OUT.format(c="ts")}, (epoch(ts) // 86400)::INTEGER,
               1, row_number() OVER (ORDER BY consent_event_id)
        FROM opt_ins WHERE ts < $end::TIMESTAMP
        ORDER BY day, kind, n"""
        return _run(con, consent, sql, text=text, end=end)
    finally:
        con.unregister("versions")


def products_with_changes(
    con, table: pa.Table, start: str, end: str, share: float, seed: int
) -> pa.Table:
    """A share of products with a second version at a 10% higher price."""
    chosen = {"share": share, "salt": "price", "start": start, "end": end, "seed": seed}
    return _second_versions(
        con, table, "product_id", "launched_at",
        {"price": "printf('%.2f', round(price::DECIMAL(18, 2) * 1.1, 2))"}, chosen,
    )  # fmt: skip


def with_changes(con, source: str, table: pa.Table, world: dict, share: float) -> pa.Table:
    """``table`` (a source's printed rows) with the changes of its records as versions."""
    spec = world["spec"]
    start, end = (
        datetime.fromtimestamp(ts, UTC).replace(tzinfo=None).isoformat(sep=" ")
        for ts in (spec.start_ts, spec.end_ts)
    )
    seed = spec.seed
    if source == "orders":
        return orders_with_changes(con, table, end)
    if source == "customers":
        return customers_with_changes(con, table, start, end, share, seed)
    if source == "products":
        return products_with_changes(con, table, start, end, share, seed)
    if source == "consent":
        from simulator.tables import customers_table

        customers = customers_with_changes(
            con, customers_table(con, world), start, end, share, seed
        )
        return consent_for_new_phones(con, table, customers, end)
    return table
