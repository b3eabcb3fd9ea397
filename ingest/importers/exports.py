"""A shop's CSV export read as it is: every field text, empty fields missing, file order
kept in ``_row`` (an order's first row carries its order-level fields, so order matters)."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

BOM = "\ufeff"


def read_export(
    con: duckdb.DuckDBPyConnection, name: str, text: str, delimiter: str = ","
) -> set[str]:
    """``text`` (the whole export) as DuckDB table ``name``; returns its column names. A file
    that is not CSV with a header is a ValueError that says where."""
    data = text.removeprefix(BOM).encode("utf-8")
    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=_all_text(data, delimiter), strings_can_be_null=True,
                null_values=[""], quoted_strings_can_be_null=True,
            ),
        )  # fmt: skip
    except (pa.ArrowInvalid, StopIteration) as exc:
        raise ValueError(f"cannot read the export as CSV: {exc}") from exc
    table = table.append_column("_row", pa.array(np.arange(1, table.num_rows + 1)))
    con.register(f"{name}_arrow", table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_arrow")
    con.unregister(f"{name}_arrow")
    return set(table.column_names)


def _all_text(data: bytes, delimiter: str) -> dict[str, pa.DataType]:
    """Every header column as text: no guessing that turns ids or phones into numbers."""
    import csv

    first = data.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")
    return {h: pa.string() for h in next(csv.reader([first], delimiter=delimiter))}
