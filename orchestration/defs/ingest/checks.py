"""Freshness of what the landing delivers: the newest consent day must be loaded by the
landing deadline, since an opt-out that is not loaded cannot be honoured."""

import warnings

import dagster as dg

from orchestration.defs.common import SETTINGS

CONSENT = dg.AssetKey(["raw", "consent"])

# Dagster suggests FreshnessPolicy instead; it has no notion of the newest daily partition.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.SupersessionWarning)
    consent_freshness = dg.build_time_partition_freshness_checks(
        assets=[CONSENT], deadline_cron=SETTINGS.landing_deadline_cron, timezone="UTC"
    )
