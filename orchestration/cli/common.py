"""What every command shares: the console (stderr, no hard wraps in logs) and the --as-of type."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from rich.console import Console

from warehouse.connection import connect_built
from warehouse.settings import Settings

console = Console(stderr=True, soft_wrap=True)


def as_of_type(text: str) -> datetime:
    """An ISO timestamp with a zone, as UTC; a clear error otherwise."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--as-of {text!r} is not an ISO timestamp (e.g. 2025-06-01T00:00:00Z)"
        ) from exc
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"--as-of {text!r} has no time zone; add Z or an offset such as +02:00"
        )
    return value.astimezone(UTC)


def open_warehouse(settings: Settings):
    """The built warehouse of ``settings``: exists, holds the marts, and no other writer
    holds it."""
    return connect_built(settings.warehouse, settings.duckdb_memory_limit)
