"""The send schedule: at the top of each hour (``RETENTEXT_SEND_CRON``), a send run as of
that hour, but only from fresh marts; otherwise the tick is skipped with the reason."""

from datetime import UTC, datetime

import dagster as dg

from orchestration.defs.common import LAST_UPDATED, SETTINGS, SettingsResource, hourly
from orchestration.defs.sends.assets import send_job
from warehouse.freshness import stale_reason

MARTS_BUILT = dg.AssetKey(["marts", "dim_customers"])


@dg.schedule(
    job=send_job,
    cron_schedule=SETTINGS.send_cron,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="A send run as of the current hour, when the marts are fresh.",
)
def hourly_send_schedule(context: dg.ScheduleEvaluationContext, settings: SettingsResource):
    now = context.scheduled_execution_time.astimezone(UTC)
    reason = stale_reason(_marts_as_of(context.instance), now, settings.get().marts_max_lag_hours)
    if reason:
        return dg.SkipReason(f"no send this hour: {reason}")
    hour = now.replace(minute=0, second=0, microsecond=0).strftime(hourly.fmt)
    return dg.RunRequest(run_key=hour, partition_key=hour)


def _marts_as_of(instance: dg.DagsterInstance) -> datetime | None:
    """The data time of the newest marts build, as recorded on its materialisation."""
    event = instance.get_latest_materialization_event(MARTS_BUILT)
    materialization = event.asset_materialization if event else None
    if materialization is None or LAST_UPDATED not in materialization.metadata:
        return None
    return datetime.fromtimestamp(materialization.metadata[LAST_UPDATED].value, UTC)
