"""The landing sensor: new or changed landing files (by name, size and mtime against
``raw.load_files``) launch the ingest of the affected days; stray file names are reported."""

from datetime import UTC, datetime

import dagster as dg
import duckdb

from ingest.pending import range_fingerprint, ranges_to_load, stray_files
from orchestration.defs.common import SETTINGS, SettingsResource
from orchestration.defs.ingest.assets import ingest_job

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=SETTINGS.sensor_interval_s,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Loads every complete landing day whose files are new or changed; one run "
    "per contiguous range of days. File names that fit no source are reported here.",
)
def landing_sensor(context: dg.SensorEvaluationContext, settings: SettingsResource):
    s = settings.get()
    now = datetime.now(UTC)  # the tick's time: which days are complete
    strays = stray_files(s.landing) if s.landing.is_dir() else []
    if strays:
        shown = "; ".join(str(stray) for stray in strays[:20])
        context.log.warning(f"{len(strays)} landing file(s) not loaded: {shown}")
    loading = context.instance.get_run_ids(
        dg.RunsFilter(job_name=ingest_job.name, statuses=IN_FLIGHT), limit=1
    )
    if loading:
        # a load commits source by source: its days look half-loaded until it ends, and
        # requesting them again would load them twice and rebuild the features twice
        return dg.SkipReason(f"load {loading[0]} is queued or running; looking again after it")
    try:
        ranges = ranges_to_load(s.landing, s.warehouse, now, s.partitions_start)
    except duckdb.IOException:
        return dg.SkipReason("the warehouse is being written; looking again next tick")
    except ValueError as exc:
        return dg.SkipReason(str(exc))
    if not ranges:
        names = ", ".join(stray.name for stray in strays[:5])
        note = f"; {len(strays)} stray file(s): {names}" if strays else ""
        return dg.SkipReason(f"no new or changed landing files{note}")
    return [
        dg.RunRequest(
            # the same files give the same key, so a range is requested once while it loads
            run_key=f"{start}..{end}:{range_fingerprint(s.landing, start, end, now)}",
            tags={RANGE_START: start.isoformat(), RANGE_END: end.isoformat()},
        )
        for start, end in ranges
    ]
