"""The receipts sensor: loads DLRs, replies and clicks whenever a gateway journal grew."""

import hashlib

import dagster as dg

from orchestration.defs.common import SETTINGS, SettingsResource
from orchestration.defs.sends.assets import receipts_job


@dg.sensor(
    job=receipts_job,
    minimum_interval_seconds=SETTINGS.sensor_interval_s,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Loads gateway receipts, replies and link clicks whenever the receiver's or "
    "the link service's journal grew.",
)
def gateway_receipts_sensor(context: dg.SensorEvaluationContext, settings: SettingsResource):
    root = settings.get().gateway_landing
    sizes = (
        sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.glob("*/*.jsonl"))
        if root.exists()
        else []
    )
    cursor = hashlib.md5(repr(sizes).encode()).hexdigest()
    if not sizes or cursor == context.cursor:
        return dg.SkipReason("no new receipts or replies")
    context.update_cursor(cursor)
    return dg.RunRequest(run_key=cursor)
