"""Write the simulated world as landing files: ``OUT/<source>/<YYYY-MM-DD>.<csv|jsonl>``.

Lines are rendered set-based in DuckDB (CSV quoting, JSON objects) and each day's file is one
slice of a contiguous Arrow buffer, so writing is bound by disk, not Python. Output is
byte-identical for the same seed and arguments.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.importers.landing_writer import CSV_FIELD
from simulator import defects
from simulator.changes import with_changes
from simulator.tables import BUILDERS, COLUMNS, FORMATS
from simulator.world import WorldSpec, build_world

CHUNK_ROWS = 2_000_000  # rendered lines held in memory at once
EXTRA_COLUMN = ("utm_campaign", "spring_sale")
MISSING_COLUMN = {
    "customers": "phone_e164",
    "orders": "unit_price",
    "consent": "action",
    "products": "price",
}

CSV_FIELD_MACRO = f"CREATE OR REPLACE MACRO csv_field(v) AS {CSV_FIELD.format(c='v')}"


def _render(con, table: pa.Table, fmt: str, columns: list[str]) -> pa.LargeBinaryArray:
    con.register("printed", table)
    try:
        if fmt == "csv":
            expr = "concat_ws(',', " + ", ".join(f'csv_field("{c}")' for c in columns) + ")"
        else:
            fields = ", ".join(
                f'"{c}" := json("{c}")' if c == "properties" else f'"{c}" := "{c}"' for c in columns
            )
            expr = f"to_json(struct_pack({fields}))::VARCHAR"
        lines = con.sql(f"SELECT {expr} || chr(10) AS line FROM printed").to_arrow_table()
    finally:
        con.unregister("printed")
    return lines.column("line").combine_chunks().cast(pa.large_binary())


def _joined(lines: pa.LargeBinaryArray) -> bytes | memoryview:
    """All lines of a (sliced) binary array as one contiguous buffer, without copying."""
    if len(lines) == 0:
        return b""
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)
    offsets = offsets[lines.offset : lines.offset + len(lines) + 1]
    return memoryview(lines.buffers()[2])[offsets[0] : offsets[-1]]


def _day_name(day: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=int(day))).isoformat()


def _write_source(con, source: str, table: pa.Table, out: Path, rng, rate: float) -> dict:
    fmt = FORMATS[source]
    columns = COLUMNS[source] + (["updated_at"] if "updated_at" in table.column_names else [])
    folder = out / source
    folder.mkdir(parents=True, exist_ok=True)
    chosen = defects.plan(rng, source, fmt, table.num_rows, rate)
    line_kinds = defects.CSV_LINE_DEFECTS if fmt == "csv" else defects.JSON_LINE_DEFECTS
    tag = np.full(table.num_rows, -1, np.int8)
    for i, kind in enumerate(line_kinds):
        tag[chosen.get(kind, [])] = i
    table = defects.apply_value_defects(table, source, chosen).append_column(
        "_line_defect", pa.array(tag)
    )
    table = defects.add_duplicates(table, source, chosen)

    day = table.column("day").to_numpy()
    days = np.unique(day)
    special: dict[int, str] = {}
    if rate > 0 and days.size >= 5:
        inner = days[1:-1]
        picks = rng.choice(inner, size=min(2, inner.size), replace=False)
        special[int(picks[0])] = "extra_column"
        if fmt == "csv" and source in MISSING_COLUMN and picks.size > 1:
            special[int(picks[1])] = "missing_column"
    header = (",".join(columns) + "\n").encode() if fmt == "csv" else b""

    written = 0
    bounds = np.searchsorted(day, days)
    bounds = np.append(bounds, day.size)
    start = 0
    while start < days.size:
        # a chunk of whole days of at most CHUNK_ROWS rows (at least one day)
        stop = start + 1
        while stop < days.size and bounds[stop + 1] - bounds[start] <= CHUNK_ROWS:
            stop += 1
        chunk = table.slice(bounds[start], bounds[stop] - bounds[start])
        lines = _damaged(_render(con, chunk, fmt, columns), chunk, line_kinds)
        for d in range(start, stop):
            lo, hi = bounds[d] - bounds[start], bounds[d + 1] - bounds[start]
            path = folder / f"{_day_name(days[d])}.{fmt}"
            mode = special.get(int(days[d]))
            if mode == "extra_column":
                body = _with_extra_column(lines.slice(lo, hi - lo), fmt)
                head = header.rstrip(b"\n") + f",{EXTRA_COLUMN[0]}\n".encode() if header else b""
                path.write_bytes(head + body)
            elif mode == "missing_column":
                kept = [c for c in columns if c != MISSING_COLUMN[source]]
                sub = _render(con, chunk.slice(lo, hi - lo), fmt, kept)
                path.write_bytes((",".join(kept) + "\n").encode() + bytes(_joined(sub)))
            else:
                with path.open("wb") as fh:
                    fh.write(header)
                    fh.write(_joined(lines.slice(lo, hi - lo)))
            written += int(hi - lo)
        start = stop

    if rate > 0 and days.size:
        first = _day_name(days[0])
        (folder / f"{first}.part2.{fmt}").write_bytes(b"")  # empty re-delivery
        if fmt == "csv":
            (folder / f"{first}.part3.{fmt}").write_bytes(header)  # header only
    return {
        "rows": written,
        "files": len(list(folder.iterdir())),
        "defects": {k: int(v.size) for k, v in chosen.items()},
    }


def _damaged(lines: pa.LargeBinaryArray, chunk: pa.Table, kinds: list[str]):
    tag = chunk.column("_line_defect").to_numpy()
    rows = np.flatnonzero(tag >= 0)
    if rows.size == 0:
        return lines
    mask = np.zeros(len(lines), bool)
    mask[rows] = True
    bad = [defects.damage_line(kinds[tag[r]], lines[int(r)].as_py()) for r in rows]
    return pc.replace_with_mask(lines, pa.array(mask), pa.array(bad, pa.large_binary()))


def _with_extra_column(lines: pa.LargeBinaryArray, fmt: str) -> bytes:
    name, value = EXTRA_COLUMN
    body = bytes(_joined(lines))
    if fmt == "csv":
        return body.replace(b"\n", f",{value}\n".encode())
    return body.replace(b"}\n", f',"{name}":"{value}"}}\n'.encode())


def simulate(
    out: Path,
    customers: int,
    start: date,
    days: int,
    seed: int,
    bad_rows: float = 0.0,
    progress: Callable[[str], None] | None = None,
    changes: float = 0.0,
) -> dict:
    """Generate a world and write its landing files; returns per-source counts. With
    ``changes`` (a share of customers and products), records change after they land:
    refunds and cancellations, new phone numbers, new prices (``simulator/changes.py``)."""
    if customers < 1 or days < 1:
        raise ValueError("--customers and --days must be at least 1")
    if not 0.0 <= bad_rows < 0.5:
        raise ValueError("--bad-rows must be a rate in [0, 0.5)")
    if not 0.0 <= changes <= 1.0:
        raise ValueError("--changes must be a share in [0, 1]")
    spec = WorldSpec(
        customers, datetime(start.year, start.month, start.day, tzinfo=UTC), days, seed
    )
    world = build_world(spec)
    out = Path(out)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(CSV_FIELD_MACRO)
    summary = {}
    for i, source in enumerate(COLUMNS):
        if progress:
            progress(source)
        shutil.rmtree(out / source, ignore_errors=True)
        table = BUILDERS[source](con, world)
        if changes:
            table = with_changes(con, source, table, world, changes)
        # each source gets its own generator so defects in one never shift another
        rng = np.random.default_rng([seed, 1000 + i])
        summary[source] = _write_source(con, source, table, out, rng, bad_rows)
    con.close()
    return summary
