"""What every concern of the code location shares, defined once: the settings (read from the
environment when Dagster loads the code location), the partitions and the resources."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from warehouse.settings import Settings

SETTINGS = Settings.from_env()
# Every asset that writes the warehouse is in this pool; the instance's dagster.yaml limits
# it to one run at a time (granularity: run), so no run fails on DuckDB's file lock.
WAREHOUSE_POOL = "warehouse"
# The data time of a build (the as_of the features were built at), under the metadata key
# Dagster's freshness checks read; the send schedule reads it too.
LAST_UPDATED = "dagster/last_updated_timestamp"


class LandingResource(dg.ConfigurableResource):
    """The folder holding ``<source>/<YYYY-MM-DD>.<csv|jsonl>`` landing files."""

    path: str

    @property
    def folder(self) -> Path:
        return Path(self.path)


class SettingsResource(dg.ConfigurableResource):
    """The pipeline's settings as a resource: read from the environment when the code
    location loads, or given by whoever materialises (a test, the CLI, a deployment). Held
    as the environment that reproduces them, so a new setting needs no change here."""

    values: dict[str, str]

    @classmethod
    def of(cls, settings: Settings) -> SettingsResource:
        return cls(values=settings.as_env())

    def get(self) -> Settings:
        return Settings.from_env(self.values)


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
