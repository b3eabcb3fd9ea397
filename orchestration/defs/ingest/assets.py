"""Ingest: one daily-partitioned asset per landing source, each with a Great Expectations
check on the accepted batch and a check on the share of rows quarantined."""

import warnings
from datetime import UTC, timedelta

import dagster as dg
from dagster_duckdb import DuckDBResource

from ingest.expectations import validate_partitions
from ingest.load import LoadReport, load_range
from ingest.spec import sources
from orchestration.defs.common import WAREHOUSE_POOL, LandingResource, SettingsResource, daily

GE_CHECK = "great_expectations"
QUARANTINE_CHECK = "quarantine_share"


def _metadata(report: LoadReport) -> dict:
    """Counts and reasons for the loaded range. Dagster copies them onto every partition of
    the range, so ``loaded_range`` says what they count. Kept small; the detail per file
    and line is in raw.load_files and raw.quarantine. Reasons, file notes, extra columns and
    stray files only when there are some: Dagster stores a copy on each partition of a
    backfill."""
    notes = {f.file: f.note for f in report.files if f.note}
    extra = sorted({c for f in report.files for c in f.extra_columns})
    details = {
        "quarantine_reasons": report.reasons,
        "file_notes": dict(list(notes.items())[:20]),
        "extra_columns": extra,
        "stray_files": report.stray_files[:20],  # in the folder, never loaded, with why
    }
    return {
        "loaded_range": f"{report.start}..{report.end}",
        "rows_read": report.total("rows_read"),
        "rows_accepted": report.total("rows_accepted"),
        "rows_quarantined": report.total("rows_quarantined"),
        "duplicates_dropped": report.total("duplicates_dropped"),
        "files": len(report.files),
        "reconciled": all(f.reconciles for f in report.files),
        **{name: dg.MetadataValue.json(value) for name, value in details.items() if value},
    }


def raw_asset(source: str) -> dg.AssetsDefinition:
    key = dg.AssetKey(["raw", source])

    @dg.asset(
        key=key,
        group_name="ingest",
        partitions_def=daily,
        backfill_policy=dg.BackfillPolicy.single_run(),  # a backfill is one set-based load
        check_specs=[
            dg.AssetCheckSpec(
                GE_CHECK, asset=key, description="Great Expectations suite on accepted rows"
            ),
            dg.AssetCheckSpec(
                QUARANTINE_CHECK,
                asset=key,
                description="Warns when a load quarantines more of its rows than "
                "RETENTEXT_QUARANTINE_WARN_RATE allows (raw.quarantine has each row's reason)",
            ),
        ],
        kinds={"duckdb"},
        pool=WAREHOUSE_POOL,
        description=f"Landing files of `{source}` validated into raw.{source}; bad rows go to "
        "raw.quarantine with a reason.",
    )
    def _raw(
        context: dg.AssetExecutionContext,
        warehouse: DuckDBResource,
        landing: LandingResource,
        settings: SettingsResource,
    ) -> dg.MaterializeResult:
        window = context.partition_time_window
        start, end = window.start.date(), (window.end - timedelta(days=1)).date()
        run = context.instance.get_run_record_by_id(context.run.run_id)
        loaded_at = run.create_timestamp.astimezone(UTC).replace(tzinfo=None)
        with warehouse.get_connection() as con:
            report = load_range(con, source, landing.folder, start, end, loaded_at)
            suite = validate_partitions(con, source, start, end)
        context.log.info(
            f"{source} {start}..{end}: read {report.total('rows_read')}, accepted "
            f"{report.total('rows_accepted')}, quarantined {report.total('rows_quarantined')}, "
            f"duplicates dropped {report.total('duplicates_dropped')}"
        )
        return dg.MaterializeResult(
            metadata=_metadata(report),
            check_results=[
                dg.AssetCheckResult(
                    check_name=GE_CHECK,
                    passed=suite.success,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={
                        "rows": suite.rows,
                        "evaluated": suite.evaluated,
                        "failed": dg.MetadataValue.json(suite.failed),
                    },
                ),
                quarantine_check(report, settings.get().quarantine_warn_rate),
            ],
        )

    return _raw


def quarantine_check(report: LoadReport, warn_rate: float) -> dg.AssetCheckResult:
    """Passes while the loaded range quarantined at most ``warn_rate`` of the rows read."""
    read, quarantined = report.total("rows_read"), report.total("rows_quarantined")
    share = quarantined / read if read else 0.0
    return dg.AssetCheckResult(
        check_name=QUARANTINE_CHECK,
        passed=share <= warn_rate,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{share:.2%} of {read:,} rows quarantined (warns above {warn_rate:.2%})",
        metadata={"rows_read": read, "rows_quarantined": quarantined, "share": share,
                  "warn_rate": warn_rate, "reasons": dg.MetadataValue.json(report.reasons)},
    )  # fmt: skip


with warnings.catch_warnings():  # backfill_policy is beta; nothing else is silenced
    warnings.simplefilter("ignore", dg.BetaWarning)
    raw_assets = [raw_asset(source) for source in sources()]
ingest_job = dg.define_asset_job("ingest_job", selection=dg.AssetSelection.groups("ingest"))
