"""Experiments: a daily analysis of every campaign's holdout (intent to treat) and the LTV
cohorts, written to the warehouse's ``experiments`` schema."""

import os
from datetime import UTC
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from experiments.analysis import analyse, build_cohorts
from experiments.reports import write_reports
from orchestration import settings
from send_jobs.campaign_specs import load_campaigns


def reports_dir() -> Path:
    return Path(os.environ.get("RETENTEXT_REPORTS", "data/reports")).resolve()


daily = dg.DailyPartitionsDefinition(start_date=settings.partitions_start(), timezone="UTC")


@dg.asset(
    key=["experiments", "campaign_results"],
    group_name="experiments",
    partitions_def=daily,
    deps=[dg.AssetKey(["sends", "run"]), dg.AssetKey(["marts", "fct_orders"])],
    kinds={"duckdb"},
    description="experiments.units, experiments.campaign_results and experiments.ltv_cohorts "
    "as of the end of the partition's day.",
)
def campaign_results(
    context: dg.AssetExecutionContext, warehouse: DuckDBResource
) -> dg.MaterializeResult:
    as_of = context.partition_time_window.end.astimezone(UTC)
    shares = {c.id: c.holdout_share for c in load_campaigns()}
    with warehouse.get_connection() as con:
        results = analyse(con, as_of, shares)
        units = con.execute("SELECT count(*) FROM experiments.units").fetchone()[0]
        cohorts = build_cohorts(con)
        reports = write_reports(con, reports_dir(), f"{as_of:%Y-%m-%d %H:%M} UTC")
    flagged = sorted(set(results.loc[results.srm_flag, "campaign_id"])) if len(results) else []
    return dg.MaterializeResult(
        metadata={
            "units": units,
            "result_rows": len(results),
            "cohort_rows": cohorts,
            "campaigns": int(results.campaign_id.nunique()) if len(results) else 0,
            "sample_ratio_mismatch": dg.MetadataValue.json(flagged),
            "incrementality_report": dg.MetadataValue.path(str(reports["incrementality"])),
            "cohorts_report": dg.MetadataValue.path(str(reports["cohorts"])),
        }
    )


experiments_job = dg.define_asset_job("experiments_job", selection=[campaign_results])

defs = dg.Definitions(
    assets=[campaign_results],
    jobs=[experiments_job],
    schedules=[dg.build_schedule_from_partitioned_job(experiments_job, hour_of_day=6)],
)  # the warehouse resource comes from the ingest definitions
