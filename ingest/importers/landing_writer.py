"""Rows written as landing files: ``<out>/<source>/<YYYY-MM-DD>.<tag>.csv``, one file per day.

The rows come from a DuckDB query with the contract's columns (any subset, as text), any
other columns to keep (ingest stores them in ``extra``) and a ``day`` column (the landing
day). Lines are rendered set-based (CSV quoting in SQL) and each
day's file is one slice of them. Files of the same tag are replaced, so an import run again
gives the same files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np

from ingest.spec import sources


@dataclass
class ImportSummary:
    """What an importer wrote, and what the user should know about it."""

    files: dict[str, int] = field(default_factory=dict)  # landing file -> rows
    notes: list[str] = field(default_factory=list)

    def rows(self, source: str) -> int:
        return sum(n for name, n in self.files.items() if name.startswith(source + "/"))


# a value as one CSV field: quoted where it holds a comma, quote or line break
CSV_FIELD = """CASE WHEN {c} IS NULL THEN ''
    WHEN contains({c}, ',') OR contains({c}, '"') OR contains({c}, chr(10))
         OR contains({c}, chr(13)) THEN '"' || replace({c}, '"', '""') || '"'
    ELSE {c} END"""


def write_landing(
    con: duckdb.DuckDBPyConnection, query: str, source: str, out: Path, tag: str
) -> dict[str, int]:
    """Write the rows of ``query`` as ``source``'s landing files; returns rows per file."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _landing_rows AS {query}")
    present = [r[0] for r in con.execute("DESCRIBE _landing_rows").fetchall()]
    contract = sources()[source].names
    # the contract's columns in its order, then any others (ingest keeps them in `extra`)
    columns = [c for c in contract if c in present]
    columns += [c for c in present if c not in contract and c != "day"]
    fields = ", ".join(CSV_FIELD.format(c=f'CAST("{c}" AS VARCHAR)') for c in columns)
    rendered = con.sql(
        f"SELECT day, concat_ws(',', {fields}) || chr(10) AS line FROM _landing_rows "
        "ORDER BY day, rowid"
    ).to_arrow_table()
    con.execute("DROP TABLE _landing_rows")
    folder = Path(out) / source
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(f"*.{tag}.csv"):
        old.unlink()
    header = (",".join(columns) + "\n").encode()
    days = rendered.column("day").to_numpy(zero_copy_only=False)
    lines = rendered.column("line").to_pylist()
    written: dict[str, int] = {}
    bounds = np.flatnonzero(np.r_[True, days[1:] != days[:-1], True])
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        name = f"{source}/{days[lo]}.{tag}.csv"
        (Path(out) / name).write_bytes(header + "".join(lines[lo:hi]).encode())
        written[name] = int(hi - lo)
    return written
