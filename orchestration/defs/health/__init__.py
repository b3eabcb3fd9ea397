"""What keeps the nightly chain running unattended: the automation sensor that rebuilds the
features and the experiments, the sensor that runs the freshness checks, and an alert for
every failed run."""

import warnings

import dagster as dg

from orchestration.defs.common import SETTINGS, SettingsResource
from orchestration.defs.features.checks import marts_freshness
from orchestration.defs.ingest.checks import consent_freshness
from warehouse.alerts import alert

automation = dg.AutomationConditionSensorDefinition(
    "nightly_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=SETTINGS.sensor_interval_s,
    description="Rebuilds the features after each ingest and the experiments after the "
    "features (the automation conditions on those assets).",
)

# Freshness is judged in hours; each evaluation is a run (a process loading the code
# location), and looking every minute launched one per mart while a features build wrote
# them, slowing the build itself 2.4x at 1M customers.
FRESHNESS_INTERVAL_S = 600

with warnings.catch_warnings():  # superseded with the checks; see features/checks.py
    warnings.simplefilter("ignore", dg.SupersessionWarning)
    freshness_sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=[*marts_freshness, *consent_freshness],
        minimum_interval_seconds=max(FRESHNESS_INTERVAL_S, SETTINGS.sensor_interval_s),
        default_status=dg.DefaultSensorStatus.RUNNING,
    )


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=SETTINGS.sensor_interval_s,
    description="A line in RETENTEXT_ALERTS_LOG for every failed run, and a message to "
    "RETENTEXT_ALERT_WEBHOOK when it is set.",
)
def run_failure_alert(context: dg.RunFailureSensorContext, settings: SettingsResource):
    run = context.dagster_run
    message = context.failure_event.message or "the run failed"
    alert(settings.get(), f"Retentext run failed: {run.job_name} ({run.run_id}): {message}")


defs = dg.Definitions(sensors=[automation, freshness_sensor, run_failure_alert])
