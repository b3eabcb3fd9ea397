"""Sends: the hourly send run, gated on fresh marts, and the receipts load."""

import dagster as dg

from orchestration.defs.sends.assets import gateway_receipts, receipts_job, send_job, send_run
from orchestration.defs.sends.schedules import hourly_send_schedule
from orchestration.defs.sends.sensors import gateway_receipts_sensor

defs = dg.Definitions(
    assets=[send_run, gateway_receipts],
    jobs=[send_job, receipts_job],
    schedules=[hourly_send_schedule],
    sensors=[gateway_receipts_sensor],
)  # the warehouse resource comes from the ingest definitions
