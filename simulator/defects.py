"""Realistic defects injected into landing files with ``--bad-rows RATE``.

Row defects are chosen at RATE (at least one of each kind per source), on disjoint rows, so
every bad row has exactly one known cause. Value defects change printed values before lines
are rendered; line defects damage the rendered bytes (what a broken exporter produces);
duplicates append a re-delivered row (exact, or the same key with other content) at the end
of the same day's file. File defects: one file with an extra column, one with a required
column missing (whole file rejected by ingest), an empty file and a header-only file.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# source -> kind -> (column, bad value) for value defects
VALUE_DEFECTS: dict[str, dict[str, tuple[str, str]]] = {
    "customers": {
        "missing_required": ("phone_e164", ""),
        "bad_timestamp": ("created_at", "31/02/2024 25:61"),
        "future_timestamp": ("created_at", "2099-06-01T10:00:00Z"),
        "invalid_phone": ("phone_e164", "+1 555 0100"),
        "unknown_time_zone": ("time_zone", "Mars/Olympus_Mons"),
    },
    "products": {
        "missing_required": ("name", ""),
        "negative_amount": ("price", "-12.00"),
        "non_numeric_amount": ("price", "twelve"),
        "bad_timestamp": ("launched_at", "yesterday"),
    },
    "orders": {
        "missing_required": ("product_id", ""),
        "bad_timestamp": ("ordered_at", "2024-13-45T99:00:00Z"),
        "future_timestamp": ("ordered_at", "2091-01-01T12:00:00Z"),
        "negative_amount": ("unit_price", "-19.99"),
        "negative_quantity": ("quantity", "-1"),
        "non_numeric_quantity": ("quantity", "two"),
        "non_numeric_amount": ("unit_price", "12,50 EUR"),
        "naive_timestamp": ("ordered_at", "2024-05-01 10:00:00"),
    },
    "events": {
        "missing_required": ("customer_id", ""),
        "bad_timestamp": ("occurred_at", "not a time"),
        "future_timestamp": ("occurred_at", "2088-08-08T08:08:08Z"),
        "unknown_event_type": ("event_type", "page_scroll"),
    },
    "consent": {
        "missing_required": ("customer_id", ""),
        "bad_timestamp": ("occurred_at", "2024-02-30T10:00:00Z"),
        "unknown_consent_action": ("action", "maybe_later"),
        "invalid_phone": ("phone_e164", "0044 7700 900000"),
    },
}
CSV_LINE_DEFECTS = ["wrong_column_count", "unclosed_quote", "invalid_utf8"]
JSON_LINE_DEFECTS = ["invalid_json", "invalid_utf8"]
DUPLICATES = ["exact_duplicate", "conflicting_duplicate"]
# which column a conflicting re-delivery changes (same key, other content)
CONFLICT_COLUMN = {
    "customers": "language",
    "products": "price",
    "orders": "quantity",
    "events": "channel",
    "consent": "source",
}
CONFLICT_VALUE = {
    "customers": "xx",
    "products": "999.00",
    "orders": "7",
    "events": "store",
    "consent": "account_settings",
}


def row_kinds(source: str, fmt: str) -> list[str]:
    line = CSV_LINE_DEFECTS if fmt == "csv" else JSON_LINE_DEFECTS
    return list(VALUE_DEFECTS[source]) + line + DUPLICATES


def plan(rng: np.random.Generator, source: str, fmt: str, n_rows: int, rate: float) -> dict:
    """Pick disjoint rows for each defect kind: {kind: row indices}."""
    kinds = row_kinds(source, fmt)
    if rate <= 0 or n_rows == 0:
        return {}
    n_bad = min(n_rows, max(len(kinds), round(rate * n_rows)))
    rows = rng.choice(n_rows, size=n_bad, replace=False)
    return {kind: np.sort(rows[i :: len(kinds)]) for i, kind in enumerate(kinds)}


def apply_value_defects(table: pa.Table, source: str, chosen: dict) -> pa.Table:
    for kind, (column, bad) in VALUE_DEFECTS[source].items():
        rows = chosen.get(kind)
        if rows is None or rows.size == 0:
            continue
        mask = np.zeros(table.num_rows, bool)
        mask[rows] = True
        col = pc.replace_with_mask(
            table.column(column).combine_chunks(),
            pa.array(mask),
            pa.array([bad] * rows.size, pa.string()),
        )
        table = table.set_column(table.schema.get_field_index(column), column, col)
    return table


def add_duplicates(table: pa.Table, source: str, chosen: dict) -> pa.Table:
    """Append re-delivered rows (exact, or same key with other content) at the end of their
    day; returns the table sorted by day."""
    parts = [table]
    exact = chosen.get("exact_duplicate", np.array([], int))
    if exact.size:
        parts.append(table.take(pa.array(exact)))
    conflict = chosen.get("conflicting_duplicate", np.array([], int))
    if conflict.size:
        copy = table.take(pa.array(conflict))
        column = CONFLICT_COLUMN[source]
        copy = copy.set_column(
            copy.schema.get_field_index(column),
            column,
            pa.array([CONFLICT_VALUE[source]] * conflict.size, pa.string()),
        )
        parts.append(copy)
    merged = pa.concat_tables(parts).combine_chunks()
    order = np.argsort(merged.column("day").to_numpy(), kind="stable")
    return merged.take(pa.array(order))


def damage_line(kind: str, line: bytes) -> bytes:
    """A broken exporter's version of one rendered line (ending in a newline)."""
    body = line.rstrip(b"\n")
    if kind == "wrong_column_count":
        return body + b",surplus\n"
    if kind == "unclosed_quote":
        head, _, tail = body.partition(b",")
        return head + b',"' + tail + b"\n"
    if kind == "invalid_utf8":
        cut = max(1, len(body) // 3)
        return body[:cut] + b"\xe9\xff" + body[cut:] + b"\n"  # latin-1 bytes in a UTF-8 file
    if kind == "invalid_json":
        return body[: len(body) // 2] + b"\n"  # truncated record
    raise ValueError(f"unknown line defect {kind!r}")
