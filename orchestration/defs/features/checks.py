"""Freshness of the marts by data time: each build records the ``as_of`` it was built at as
Dagster's last-updated timestamp, and marts older than ``RETENTEXT_MARTS_MAX_LAG_HOURS`` fail
the check (the hourly sends skip them for the same reason)."""

import warnings
from datetime import timedelta

import dagster as dg

from orchestration.defs.common import SETTINGS
from warehouse.contract import public_marts

MART_KEYS = [dg.AssetKey(["marts", mart.name]) for mart in public_marts()]

# Dagster suggests FreshnessPolicy instead; it judges the time of the last build, not the
# data time a build records, and a rebuild of stale data is not fresh data.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.SupersessionWarning)
    marts_freshness = dg.build_last_update_freshness_checks(
        assets=MART_KEYS, lower_bound_delta=timedelta(hours=SETTINGS.marts_max_lag_hours)
    )
