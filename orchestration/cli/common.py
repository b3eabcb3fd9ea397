"""What every command shares: the console (stderr, no hard wraps in logs, tables
``LOG_WIDTH`` wide when it is not a terminal) and the --as-of type.

The console reads no markup: every value it shows comes from data (product ids, headers,
file names) and is printed as it is. Colour goes through ``error`` and ``warn``."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from rich.console import Console
from rich.text import Text

from warehouse.connection import connect_built
from warehouse.settings import Settings

LOG_WIDTH = 160  # a log or a pipe has no width of its own; rich would assume 80 and wrap
console = Console(stderr=True, soft_wrap=True, markup=False, highlight=False,
                  width=None if sys.stderr.isatty() else LOG_WIDTH)  # fmt: skip


def error(message: str) -> None:
    console.print(Text.assemble(("error:", "red"), " ", message))


def warn(message: str) -> None:
    console.print(Text(message, style="yellow"))


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
