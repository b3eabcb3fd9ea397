"""Opening the DuckDB warehouse: one writer at a time, and a clear error when another
process holds it or the marts are not built yet."""

from __future__ import annotations

from pathlib import Path

import duckdb


def connect(path: Path, memory_limit: str = "4GB") -> duckdb.DuckDBPyConnection:
    """The warehouse at ``path`` (created when missing); a lock held by another writer is a
    clear error that says nothing was read or changed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return duckdb.connect(str(path), config={"memory_limit": memory_limit})
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        raise ValueError(
            f"warehouse {path} is in use by another process; nothing was read or changed. "
            f"Wait for it to finish (DuckDB allows one writer). ({str(exc).splitlines()[0]})"
        ) from exc


def connect_built(path: Path, memory_limit: str = "4GB") -> duckdb.DuckDBPyConnection:
    """The warehouse for sending and measuring: it must exist and hold the marts."""
    if not path.exists():
        raise ValueError(f"warehouse {path} does not exist; run `retentext run` first")
    con = connect(path, memory_limit)
    built = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'marts' AND table_name = 'dim_customers'"
    ).fetchone()[0]
    if not built:
        con.close()
        raise ValueError(f"{path} has no marts; run `retentext run` to build the features")
    return con
