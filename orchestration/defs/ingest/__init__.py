"""Ingest: landing files into ``raw.*`` (assets, checks, the landing sensor)."""

import dagster as dg

from orchestration.defs.common import SETTINGS, resources
from orchestration.defs.ingest.assets import ingest_job, raw_assets
from orchestration.defs.ingest.checks import consent_freshness
from orchestration.defs.ingest.sensors import landing_sensor

defs = dg.Definitions(
    assets=raw_assets,
    asset_checks=consent_freshness,
    jobs=[ingest_job],
    sensors=[landing_sensor],
    resources=resources(SETTINGS),
)
