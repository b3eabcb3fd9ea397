"""When the marts are too old to send from: the data time they were built as of, compared
with the time of the send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb


def stale_reason(marts_as_of: datetime | None, now: datetime, max_lag_hours: float) -> str:
    """Why marts built as of ``marts_as_of`` are not fresh at ``now``; empty when they are."""
    if marts_as_of is None:
        return "the marts have not been built yet"
    lag = now - marts_as_of
    if lag > timedelta(hours=max_lag_hours):
        return (
            f"the marts are as of {marts_as_of.isoformat()}, {lag.total_seconds() / 3600:.1f} h "
            f"before {now.isoformat()}; more than {max_lag_hours:g} h is stale "
            "(is the newest landing day loaded?)"
        )
    if lag < timedelta(0):
        return f"the marts are as of {marts_as_of.isoformat()}, after {now.isoformat()}"
    return ""


def marts_as_of(con) -> datetime | None:
    """The time the marts in the warehouse were built as of (None before the first build)."""
    try:
        row = con.execute("SELECT max(as_of) FROM marts.dim_customers").fetchone()
    except duckdb.CatalogException:
        return None
    return row[0].replace(tzinfo=UTC) if row[0] else None
