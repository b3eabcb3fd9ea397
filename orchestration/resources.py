"""Dagster resources: the DuckDB warehouse and the landing folder."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from orchestration import settings


class LandingResource(dg.ConfigurableResource):
    """The folder holding ``<source>/<YYYY-MM-DD>.<csv|jsonl>`` landing files."""

    path: str

    @property
    def folder(self) -> Path:
        return Path(self.path)


def warehouse_resource() -> DuckDBResource:
    path = settings.warehouse_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return DuckDBResource(
        database=str(path), connection_config={"memory_limit": settings.duckdb_memory_limit()}
    )


def landing_resource() -> LandingResource:
    return LandingResource(path=str(settings.landing_path()))
