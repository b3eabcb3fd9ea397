"""Great Expectations suites (from ``expectations.yaml``) run on an accepted batch."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import yaml

from ingest.gx_context import great_expectations_context
from ingest.spec import sources
from ingest.validate import ident

SUITES_FILE = Path(__file__).with_name("expectations.yaml")
# Expectations that judge each row on its own: a suite made only of these (and without a
# `mostly` share) gives the same verdict on row chunks as on the whole batch, so a backfill
# of tens of millions of rows is checked a few million at a time in bounded memory.
ROW_LOCAL = {
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_match_regex",
}
CHUNK_ROWS = 2_000_000


@dataclass
class SuiteResult:
    success: bool
    evaluated: int
    failed: list[dict]  # expectation, column(s), unexpected count, examples
    rows: int


@cache
def suites() -> dict[str, list[tuple[str, dict]]]:
    raw = yaml.safe_load(SUITES_FILE.read_text())
    return {src: [next(iter(e.items())) for e in entries] for src, entries in raw.items()}


def _class_name(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


@cache
def _context():
    return great_expectations_context()


def _columns(entries: list[tuple[str, dict]]) -> list[str]:
    cols = []
    for _, kwargs in entries:
        cols += [kwargs["column"]] if "column" in kwargs else list(kwargs.get("column_list", []))
    return list(dict.fromkeys(cols))


def validate_frame(source: str, frame: pd.DataFrame) -> SuiteResult:
    """Run the source's suite on a DataFrame of accepted rows."""
    gx, ctx = _context()
    entries = suites()[source]
    suite = gx.ExpectationSuite(name=f"raw_{source}")
    for name, kwargs in entries:
        suite.add_expectation(getattr(gx.expectations, _class_name(name))(**kwargs))
    name = f"raw_{source}"
    try:
        data_source = ctx.data_sources.get(name)
    except (KeyError, ValueError):
        data_source = ctx.data_sources.add_pandas(name)
    asset = data_source.add_dataframe_asset(f"{name}_{len(data_source.assets)}")
    batch = asset.add_batch_definition_whole_dataframe("batch").get_batch(
        batch_parameters={"dataframe": frame}
    )
    result = batch.validate(suite)
    failed = []
    for r in result.results:
        if not r.success:
            cfg = r.expectation_config
            failed.append(
                {
                    "expectation": cfg.type,
                    "column": cfg.kwargs.get("column") or cfg.kwargs.get("column_list"),
                    "unexpected_count": r.result.get("unexpected_count"),
                    "examples": [
                        str(x) for x in (r.result.get("partial_unexpected_list") or [])[:5]
                    ],
                }
            )
    return SuiteResult(bool(result.success), len(result.results), failed, len(frame))


def _row_local(entries: list[tuple[str, dict]]) -> bool:
    return all(name in ROW_LOCAL and "mostly" not in kwargs for name, kwargs in entries)


def _merge(parts: list[SuiteResult]) -> SuiteResult:
    """One result from the results of row chunks: counts add up, examples are the first."""
    failed: dict[str, dict] = {}
    for part in parts:
        for f in part.failed:
            key = f"{f['expectation']}:{f['column']}"
            if key in failed:
                failed[key]["unexpected_count"] = (failed[key]["unexpected_count"] or 0) + (
                    f["unexpected_count"] or 0
                )
                failed[key]["examples"] = (failed[key]["examples"] + f["examples"])[:5]
            else:
                failed[key] = dict(f)
    return SuiteResult(
        all(p.success for p in parts),
        max(p.evaluated for p in parts),
        list(failed.values()),
        sum(p.rows for p in parts),
    )


def validate_partitions(
    con: duckdb.DuckDBPyConnection, source: str, start: date, end: date
) -> SuiteResult:
    """The suite on the rows accepted for ``start``..``end`` (only the columns it needs);
    row-local suites in chunks of ``CHUNK_ROWS``. Rows come to pandas through Arrow, cheaper
    than DuckDB's own DataFrame conversion, which gives the same frame once decimals are
    doubles, as DuckDB made them (``_frame``)."""
    entries = suites()[source]
    types = {c.name: c.type for c in sources()[source].columns}
    cols = ", ".join(
        f"{ident(c)}::DOUBLE AS {ident(c)}" if types.get(c) == "decimal" else ident(c)
        for c in _columns(entries)
    )
    rows = con.sql(
        f"SELECT {cols} FROM raw.{source} WHERE partition_date BETWEEN $s AND $e",
        params={"s": start, "e": end},
    )
    if not _row_local(entries):
        return validate_frame(source, _frame(rows.to_arrow_table()))
    return _merge(
        [validate_frame(source, _frame(chunk)) for chunk in _chunked(rows.to_arrow_reader())]
    )


def _frame(table: pa.Table) -> pd.DataFrame:
    """The DataFrame DuckDB's ``.df()`` gives: integers with nulls stay integers (Int64,
    not float64: an example reads 400, not 400.0). Only those: GX's checks run many times
    slower on a nullable Int64 column than on a plain int64 one."""
    frame = table.to_pandas()
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_integer(column.type) and column.null_count:
            frame[name] = column.to_pandas(types_mapper=lambda _: pd.Int64Dtype())
    return frame


def _chunked(reader: pa.RecordBatchReader) -> Iterator[pa.Table]:
    """DuckDB's record batches (a row group each) as tables of ``CHUNK_ROWS`` rows (the last
    may be shorter; no rows: one empty table): the suite has a fixed cost per frame. Slices,
    not copies."""
    pending, count, whole = [], 0, 0
    for batch in reader:
        pending.append(batch)
        count += batch.num_rows
        while count >= CHUNK_ROWS:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, CHUNK_ROWS)
            whole += 1
            rest = table.slice(CHUNK_ROWS)
            pending, count = rest.to_batches(), rest.num_rows
    if count or not whole:
        yield pa.Table.from_batches(pending, schema=reader.schema)
