"""Results kept per analysis date: ``experiments.<name>_history`` holds every ``as_of`` an
analysis ran for, so anyone can see how a campaign's estimate moved. Re-running a date
replaces that date's rows; a column added to the results later is added to the history,
NULL on older dates."""

from __future__ import annotations

from datetime import datetime

import pandas as pd


def keep_history(con, frame: pd.DataFrame, name: str, as_of: datetime) -> None:
    """Replace ``as_of``'s rows of ``experiments.<name>_history`` with ``frame``."""
    table = f"experiments.{name}_history"
    con.register("_history_rows", frame)
    try:
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS FROM _history_rows LIMIT 0")
        kept = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
        for column, kind, *_ in con.execute("DESCRIBE _history_rows").fetchall():
            if column not in kept:
                con.execute(f'ALTER TABLE {table} ADD COLUMN "{column}" {kind}')
        con.execute(f"DELETE FROM {table} WHERE as_of = ?", [as_of.replace(tzinfo=None)])
        con.execute(f"INSERT INTO {table} BY NAME FROM _history_rows")
    finally:
        con.unregister("_history_rows")
