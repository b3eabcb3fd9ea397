"""The pipeline's settings: read from the environment once, at an entry point (the CLI, the
Dagster code location, a benchmark), and passed down. Safe defaults; see .env.example."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

WAREHOUSE_ENV = "RETENTEXT_WAREHOUSE"  # also read by dbt's profiles.yml
LANDING_ENV = "RETENTEXT_LANDING"
PARTITIONS_START_ENV = "RETENTEXT_PARTITIONS_START"


@dataclass(frozen=True)
class Settings:
    warehouse: Path  # the DuckDB file
    landing: Path  # <source>/<YYYY-MM-DD>.<csv|jsonl> landing files; gateway/ below it
    outbox: Path  # the outbox gateway's batches
    reports: Path  # the HTML reports
    kannel_state: Path  # the local Kannel's config, logs, secrets and journals
    partitions_start: date  # the first day the daily partitions cover
    duckdb_memory_limit: str = "4GB"  # DuckDB spills to disk past this
    dbt_threads: int | None = None  # None: 1 for a first build, 2 after

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str, default: str) -> str:
            return env.get(name) or default

        threads = get("RETENTEXT_DBT_THREADS", "")
        return cls(
            warehouse=Path(get(WAREHOUSE_ENV, "data/warehouse.duckdb")).resolve(),
            landing=Path(get(LANDING_ENV, "data/landing")).resolve(),
            outbox=Path(get("RETENTEXT_OUTBOX", "data/outbox")).resolve(),
            reports=Path(get("RETENTEXT_REPORTS", "data/reports")).resolve(),
            kannel_state=Path(get("RETENTEXT_KANNEL_STATE", "data/kannel")).resolve(),
            partitions_start=_day(get(PARTITIONS_START_ENV, "2024-01-01")),
            duckdb_memory_limit=get("RETENTEXT_DUCKDB_MEMORY_LIMIT", "4GB"),
            dbt_threads=int(threads) if threads else None,
        )

    @property
    def gateway_landing(self) -> Path:
        """Where the receiver appends DLRs and replies (``receipts/`` and ``replies/``)."""
        return self.landing / "gateway"

    def with_paths(self, **paths: str | Path | None) -> Settings:
        """The same settings with the given paths (command-line options) where they are set."""
        return replace(self, **{k: Path(v).resolve() for k, v in paths.items() if v})


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{PARTITIONS_START_ENV}={text!r} is not a date (YYYY-MM-DD)") from exc
