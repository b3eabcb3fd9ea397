"""Build the marts on Apache Spark from the same raw data and diff them against DuckDB's.

Plain functions (no Dagster): export the ingested raw tables to parquet, run the same dbt
project with the `spark` target (pyspark session, local mode), then compare every public
mart row by row in DuckDB, joined on the mart's key. Numbers are equal when they differ by at
most 1e-6 (absolute); timestamps to the microsecond in UTC; everything else exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ingest.spec import sources
from warehouse.contract import public_marts
from warehouse.dbt_build import DBT_DIR, as_of_var, dbt_executable

TOLERANCE = 1e-6  # numbers equal when they differ by at most this (absolute)
PER_BUILD = ("build_id",)  # lineage: which dbt invocation wrote the row, never the same
INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UBIGINT")


@dataclass
class MartDiff:
    mart: str
    duckdb_rows: int
    spark_rows: int
    differing_rows: int
    columns_only_in: dict[str, list[str]] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)


def export_raw(warehouse: Path, spark_dir: Path) -> dict[str, int]:
    """raw.<source> -> <spark_dir>/raw/<source>/part-0.parquet (timestamps as UTC instants,
    so Spark reads them as its session-zone TIMESTAMP)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    counts = {}
    try:
        for table in sources():
            cols = con.execute(f"DESCRIBE raw.{table}").fetchall()
            select = ", ".join(
                f'CAST("{c}" AS TIMESTAMPTZ) AS "{c}"' if t == "TIMESTAMP" else f'"{c}"'
                for c, t, *_ in cols
            )
            out = spark_dir / "raw" / table
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            con.execute(
                f"COPY (SELECT {select} FROM raw.{table}) TO "
                f"'{out / 'part-0.parquet'}' (FORMAT parquet)"
            )
            counts[table] = con.execute(f"SELECT count(*) FROM raw.{table}").fetchone()[0]
    finally:
        con.close()
    return counts


def dbt_build(target: str, as_of: str, env: dict[str, str], target_path: Path) -> str:
    """`dbt build` (models, seeds, data and unit tests) on a target; returns its log, raises
    with that log if anything failed."""
    args = [
        dbt_executable(),
        "build",
        "--profiles-dir",
        str(DBT_DIR),
        "--target",
        target,
        "--target-path",
        str(target_path),
        "--vars",
        json.dumps({"as_of": as_of_var(as_of)}),
    ]
    done = subprocess.run(
        args, cwd=DBT_DIR, env={**os.environ, **env}, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"dbt build --target {target} failed:\n{done.stdout[-6000:]}")
    return done.stdout


def _normalised(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, tuple[str, bool]]:
    """column -> (expression putting values on common ground, is numeric)."""
    out = {}
    for name, typ, *_ in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall():
        quoted = f'"{name}"'
        if typ.startswith(("DECIMAL", "DOUBLE", "FLOAT", "REAL")) or typ in INTEGERS:
            out[name] = (f"CAST({quoted} AS DOUBLE)", True)
        elif typ.startswith(("TIMESTAMP", "DATE")):
            out[name] = (f"CAST({quoted} AS TIMESTAMP)", False)
        else:
            out[name] = (f"CAST({quoted} AS VARCHAR)", False)
    return out


def compare_marts(warehouse: Path, spark_dir: Path) -> list[MartDiff]:
    """Row by row on each mart's key: a row differs when its key is on one side only or a
    value differs (numbers by more than TOLERANCE, anything else at all)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"ATTACH '{warehouse}' AS wh (READ_ONLY)")
    diffs = []
    try:
        for contract in public_marts():
            mart, key = contract.name, contract.key
            ours = f"wh.marts.{mart}"
            schema, table = contract.stored_in  # Spark's views have no files of their own
            theirs = f"read_parquet('{spark_dir / 'warehouse' / f'{schema}.db' / table}/*.parquet')"
            a_cols, b_cols = _normalised(con, ours), _normalised(con, theirs)
            common = [c for c in a_cols if c in b_cols and c not in PER_BUILD]
            only = {
                "duckdb": [c for c in a_cols if c not in b_cols],
                "spark": [c for c in b_cols if c not in a_cols],
            }
            for side, cols, rel in (("a", a_cols, ours), ("b", b_cols, theirs)):
                select = ", ".join(f'{cols[c][0]} AS "{c}"' for c in common)
                con.execute(f"CREATE OR REPLACE TEMP TABLE {side} AS SELECT {select} FROM {rel}")
            same = " AND ".join(
                f'(a."{c}" IS NULL AND b."{c}" IS NULL OR abs(a."{c}" - b."{c}") <= {TOLERANCE})'
                if a_cols[c][1] and b_cols[c][1]
                else f'a."{c}" IS NOT DISTINCT FROM b."{c}"'
                for c in common
                if c != key
            )
            differing_sql = (
                f'FROM a FULL OUTER JOIN b ON a."{key}" = b."{key}" '
                f'WHERE a."{key}" IS NULL OR b."{key}" IS NULL OR NOT ({same})'
            )
            differing = con.execute(f"SELECT count(*) {differing_sql}").fetchone()[0]
            examples = [
                repr(r)
                for r in con.execute(
                    f'SELECT coalesce(a."{key}", b."{key}") {differing_sql} LIMIT 5'
                ).fetchall()
            ]
            rows_a = con.execute("SELECT count(*) FROM a").fetchone()[0]
            rows_b = con.execute("SELECT count(*) FROM b").fetchone()[0]
            if only["duckdb"] or only["spark"]:
                differing = max(differing, rows_a, rows_b)
            diffs.append(
                MartDiff(
                    mart,
                    rows_a,
                    rows_b,
                    int(differing),
                    {k: v for k, v in only.items() if v},
                    examples,
                )
            )
    finally:
        con.close()
    return diffs
