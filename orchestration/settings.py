"""Configuration from environment variables, with safe defaults (see .env.example)."""

from __future__ import annotations

import os
from pathlib import Path

WAREHOUSE_ENV = "RETENTEXT_WAREHOUSE"  # read by dbt's profiles.yml too
LANDING_ENV = "RETENTEXT_LANDING"
PARTITIONS_START_ENV = "RETENTEXT_PARTITIONS_START"


def warehouse_path() -> Path:
    return Path(os.environ.get(WAREHOUSE_ENV, "data/warehouse.duckdb")).resolve()


def landing_path() -> Path:
    return Path(os.environ.get(LANDING_ENV, "data/landing")).resolve()


def partitions_start() -> str:
    # the first day the daily partitions cover; landing files before it are refused loudly
    return os.environ.get(PARTITIONS_START_ENV, "2024-01-01")


def duckdb_memory_limit() -> str:
    # DuckDB spills to disk past this; keeps a nightly run's memory predictable on small boxes
    return os.environ.get("RETENTEXT_DUCKDB_MEMORY_LIMIT", "4GB")


def dbt_threads_override() -> int | None:
    # unset: one dbt thread for a first build, two after (orchestration.features.dbt_threads)
    value = os.environ.get("RETENTEXT_DBT_THREADS")
    return int(value) if value else None
