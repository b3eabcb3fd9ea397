"""Turn the world's arrays into per-source Arrow tables of printed (string) columns.

Printing happens in DuckDB (ids, timestamps, prices), set-based. Every table carries an
int32 ``day`` column (days since the epoch of the file it lands in) and is sorted by it.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from simulator import reference as ref
from simulator.world import DAY, consent_vocab

TS = "strftime(to_timestamp({c}), '%Y-%m-%dT%H:%M:%SZ')"

COLUMNS = {
    "customers": [
        "customer_id",
        "first_name",
        "phone_e164",
        "country",
        "region",
        "time_zone",
        "language",
        "created_at",
    ],
    "products": [
        "product_id",
        "name",
        "category",
        "replenishment_days",
        "price",
        "currency",
        "launched_at",
    ],
    "orders": [
        "order_id",
        "order_line_no",
        "customer_id",
        "product_id",
        "quantity",
        "unit_price",
        "discount_amount",
        "currency",
        "status",
        "channel",
        "ordered_at",
    ],
    "events": [
        "event_id",
        "customer_id",
        "event_type",
        "occurred_at",
        "provenance",
        "channel",
        "product_id",
        "properties",
    ],
    "consent": [
        "consent_event_id",
        "customer_id",
        "phone_e164",
        "channel",
        "category",
        "action",
        "source",
        "consent_text",
        "keyword",
        "occurred_at",
    ],
}
FORMATS = {
    "customers": "csv",
    "products": "csv",
    "orders": "csv",
    "events": "jsonl",
    "consent": "csv",
}
EVENT_TYPES = [
    "product_view",
    "add_to_cart",
    "checkout_started",
    "app_open",
    "sms_click",
    "appointment_booked",
]
EVENT_PROVENANCE = ["tracked", "tracked", "tracked", "tracked", "tracked", "explicit"]


def _dict(indices: np.ndarray, values: list) -> pa.DictionaryArray:
    mask = indices < 0
    return pa.DictionaryArray.from_arrays(
        pa.array(np.where(mask, 0, indices).astype(np.int32), mask=mask),
        pa.array([str(v) for v in values] or [""], pa.string()),
    )


def _sorted_by_day(table: pa.Table) -> pa.Table:
    order = np.argsort(table.column("day").to_numpy(), kind="stable")
    return table.take(pa.array(order))


def _print(con: duckdb.DuckDBPyConnection, typed: pa.Table, select: str) -> pa.Table:
    con.register("typed", typed)
    try:
        return con.sql(f"SELECT {select}, day FROM typed").to_arrow_table()
    finally:
        con.unregister("typed")


def customers_table(con, world) -> pa.Table:
    c, spec = world["customers"], world["spec"]
    regions = c["regions"]
    country = np.array([ref.CALLING_CODE[r[0]] for r in regions])[c["region_idx"]]
    typed = pa.table(
        {
            "id": c["id"],
            # the last name value is None: a customer without a first name
            "first_name": _dict(
                np.where(c["name_idx"] == len(c["name_values"]) - 1, -1, c["name_idx"]),
                c["name_values"],
            ),
            "cc": pa.array(country),
            "national": c["national"],
            "country": _dict(c["region_idx"], [r[0] for r in regions]),
            "region": _dict(c["region_idx"], [r[1] for r in regions]),
            "time_zone": _dict(c["region_idx"], [r[2] for r in regions]),
            "language": _dict(c["lang_idx"], c["languages"]),
            "created": c["created"],
            "day": (np.maximum(c["created"], spec.start_ts) // DAY).astype(np.int32),
        }
    )
    order = np.lexsort((c["id"], c["created"], typed.column("day").to_numpy()))
    return _print(
        con,
        typed.take(pa.array(order)),
        f"""
        printf('C%08d', id) AS customer_id, first_name::VARCHAR AS first_name,
        '+' || cc || national::VARCHAR AS phone_e164, country::VARCHAR AS country,
        region::VARCHAR AS region, time_zone::VARCHAR AS time_zone,
        language::VARCHAR AS language, {TS.format(c="created")} AS created_at""",
    )


def products_table(con, world) -> pa.Table:
    cat = world["catalog"]
    n = len(cat["name"])
    typed = pa.table(
        {
            "id": np.arange(1, n + 1),
            "name": cat["name"],
            "category": cat["category"],
            "cycle": pa.array(cat["cycle"], mask=cat["cycle"] == 0),
            "price": cat["price"],
            "launched": cat["launched_at"],
            "day": (cat["launched_at"] // DAY).astype(np.int32),
        }
    )
    return _print(
        con,
        _sorted_by_day(typed),
        f"""
        printf('P%04d', id) AS product_id, name, category, cycle::VARCHAR AS replenishment_days,
        printf('%.2f', price) AS price, 'USD' AS currency,
        {TS.format(c="launched")} AS launched_at""",
    )


def orders_table(con, world) -> pa.Table:
    o = world["orders"]
    typed = pa.table(
        {
            "order_idx": o["order_idx"],
            "line_no": o["line_no"],
            "customer": o["customer"],
            "product": o["product"],
            "quantity": o["quantity"],
            "price": o["price"],
            "discount": o["discount"],
            "status": _dict(o["status"], ["completed", "cancelled", "refunded"]),
            "channel": _dict(o["channel"], ["web", "app", "store"]),
            "ordered_at": o["ordered_at"],
            "day": (o["ordered_at"] // DAY).astype(np.int32),
        }
    )
    return _print(
        con,
        typed,
        f"""
        printf('O%09d', order_idx + 1) AS order_id, line_no::VARCHAR AS order_line_no,
        printf('C%08d', customer + 1) AS customer_id, printf('P%04d', product + 1) AS product_id,
        quantity::VARCHAR AS quantity, printf('%.2f', price) AS unit_price,
        printf('%.2f', discount) AS discount_amount, 'USD' AS currency,
        status::VARCHAR AS status, channel::VARCHAR AS channel,
        {TS.format(c="ordered_at")} AS ordered_at""",
    )


def events_table(con, world) -> pa.Table:
    e = world["events"]
    stores = ref.STORES
    has = e["appt"] >= 0
    booking = np.where(has, e["appt"], 0)

    def per_booking(values: np.ndarray) -> np.ndarray:
        return values[booking] if values.size else np.zeros(booking.size, np.int64)

    typed = pa.table(
        {
            "idx": np.arange(e["ts"].size),
            "customer": e["customer"],
            "type": _dict(e["type"], EVENT_TYPES),
            "provenance": _dict(e["type"], EVENT_PROVENANCE),
            "ts": e["ts"],
            "channel": _dict(e["channel"], ["web", "app", "store", "sms"]),
            "product": pa.array(e["product"], mask=e["product"] < 0),
            "appt_at": pa.array(per_booking(e["appt_at"]), mask=~has),
            "store_id": _dict(
                np.where(has, per_booking(e["appt_store"]), -1), [s[0] for s in stores]
            ),
            "store_name": _dict(
                np.where(has, per_booking(e["appt_store"]), -1), [s[1] for s in stores]
            ),
            "checklist": _dict(
                np.where(has, per_booking(e["appt_checklist"]), -1),
                ["|".join(c) for c in ref.APPOINTMENT_CHECKLISTS],
            ),
            "day": (e["ts"] // DAY).astype(np.int32),
        }
    )
    return _print(
        con,
        typed,
        f"""
        printf('E%010d', idx + 1) AS event_id, printf('C%08d', customer + 1) AS customer_id,
        type::VARCHAR AS event_type, {TS.format(c="ts")} AS occurred_at,
        provenance::VARCHAR AS provenance, channel::VARCHAR AS channel,
        CASE WHEN product IS NOT NULL THEN printf('P%04d', product + 1) END AS product_id,
        CASE WHEN appt_at IS NULL THEN '{{}}'
             ELSE to_json(struct_pack(appointment_at := {TS.format(c="appt_at")},
                  store_id := store_id::VARCHAR, store_name := store_name::VARCHAR,
                  checklist := string_split(checklist::VARCHAR, '|')))::VARCHAR
        END AS properties""",
    )


def consent_table(con, world) -> pa.Table:
    k, c, spec = world["consent"], world["customers"], world["spec"]
    vocab = consent_vocab()
    kw_codes = sorted(vocab["keywords"])
    kw_index = np.searchsorted(kw_codes, np.where(k["keyword"] < 0, kw_codes[0], k["keyword"]))
    cc = np.array([ref.CALLING_CODE[r[0]] for r in c["regions"]])[c["region_idx"]]
    typed = pa.table(
        {
            "idx": np.arange(k["ts"].size),
            "customer": k["customer"],
            "cc": pa.array(cc[k["customer"]]),
            "national": c["national"][k["customer"]],
            "channel": _dict(k["channel"], ["sms", "email"]),
            "category": _dict(k["category"], ["marketing", "transactional"]),
            "action": _dict(k["action"], ["opt_in", "opt_out"]),
            "source": _dict(k["source"], ["web_form", "checkout", "keyword", "account_settings"]),
            "text": _dict(k["text"], vocab["texts"]),
            "keyword": _dict(
                np.where(k["keyword"] < 0, -1, kw_index),
                [vocab["keywords"][code] for code in kw_codes],
            ),
            "ts": k["ts"],
            "day": (np.maximum(k["ts"], spec.start_ts) // DAY).astype(np.int32),
        }
    )
    return _print(
        con,
        _sorted_by_day(typed),
        f"""
        printf('K%09d', idx + 1) AS consent_event_id, printf('C%08d', customer + 1) AS customer_id,
        CASE WHEN channel::VARCHAR = 'sms' THEN '+' || cc || national::VARCHAR END AS phone_e164,
        channel::VARCHAR AS channel, category::VARCHAR AS category, action::VARCHAR AS action,
        source::VARCHAR AS source, text::VARCHAR AS consent_text, keyword::VARCHAR AS keyword,
        {TS.format(c="ts")} AS occurred_at""",
    )


BUILDERS = {
    "customers": customers_table,
    "products": products_table,
    "orders": orders_table,
    "events": events_table,
    "consent": consent_table,
}
