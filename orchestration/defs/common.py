"""What every concern of the code location shares, defined once: the settings (read from the
environment when Dagster loads the code location), the partitions and the resources."""

from __future__ import annotations

from dataclasses import fields
from datetime import date
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from warehouse.settings import Settings

SETTINGS = Settings.from_env()


class LandingResource(dg.ConfigurableResource):
    """The folder holding ``<source>/<YYYY-MM-DD>.<csv|jsonl>`` landing files."""

    path: str

    @property
    def folder(self) -> Path:
        return Path(self.path)


class SettingsResource(dg.ConfigurableResource):
    """The pipeline's settings as a resource: read from the environment when the code
    location loads, or given by whoever materialises (a test, the CLI, a deployment)."""

    warehouse: str
    landing: str
    outbox: str
    reports: str
    kannel_state: str
    partitions_start: str
    duckdb_memory_limit: str = "4GB"
    dbt_threads: int | None = None

    @classmethod
    def of(cls, settings: Settings) -> SettingsResource:
        values = {f.name: getattr(settings, f.name) for f in fields(Settings)}
        return cls(**{k: v if v is None or isinstance(v, int | str) else str(v)
                      for k, v in values.items()})  # fmt: skip

    def get(self) -> Settings:
        return Settings(
            warehouse=Path(self.warehouse), landing=Path(self.landing),
            outbox=Path(self.outbox), reports=Path(self.reports),
            kannel_state=Path(self.kannel_state),
            partitions_start=date.fromisoformat(self.partitions_start),
            duckdb_memory_limit=self.duckdb_memory_limit, dbt_threads=self.dbt_threads,
        )  # fmt: skip


def resources(settings: Settings) -> dict:
    """The settings, warehouse and landing resources for ``settings``."""
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    return {
        "settings": SettingsResource.of(settings),
        "warehouse": DuckDBResource(
            database=str(settings.warehouse),
            connection_config={"memory_limit": settings.duckdb_memory_limit},
        ),
        "landing": LandingResource(path=str(settings.landing)),
    }


daily = dg.DailyPartitionsDefinition(
    start_date=SETTINGS.partitions_start.isoformat(), timezone="UTC"
)
# end_offset=1: the hourly schedule runs the hour that is starting, not the one that has
# ended, so a run's decisions are as of its own hour and hand-over follows within minutes
hourly = dg.HourlyPartitionsDefinition(
    start_date=f"{SETTINGS.partitions_start.isoformat()}-00:00", timezone="UTC", end_offset=1
)
