"""Experiments: a daily analysis of every campaign's holdout (intent to treat) and the LTV
cohorts, written to the warehouse's ``experiments`` schema, refreshed after each features
build for the newest complete day."""

from datetime import UTC

import dagster as dg
from dagster_duckdb import DuckDBResource

from orchestration.defs.common import WAREHOUSE_POOL, SettingsResource, daily

SENDS = dg.AssetSelection.key_prefixes(["sends"])
# after the marts rebuild (not after every hourly send), for the latest complete day
AFTER_FEATURES = (
    dg.AutomationCondition.in_latest_time_window()
    & dg.AutomationCondition.any_deps_updated().ignore(SENDS).since_last_handled()
    & ~dg.AutomationCondition.in_progress()
    & ~dg.AutomationCondition.any_deps_in_progress()
).with_label("after the features")


@dg.asset(
    key=["experiments", "campaign_results"],
    group_name="experiments",
    partitions_def=daily,
    deps=[dg.AssetKey(["sends", "run"]), dg.AssetKey(["marts", "fct_orders"])],
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    automation_condition=AFTER_FEATURES,
    description="experiments.units, experiments.campaign_results, "
    "experiments.campaign_guardrails and experiments.program_results (each date also kept in "
    "their *_history tables) and experiments.ltv_cohorts as of the end of the partition's day.",
)
def campaign_results(
    context: dg.AssetExecutionContext, warehouse: DuckDBResource, settings: SettingsResource
) -> dg.MaterializeResult:
    # imported here: only this asset needs scipy and statsmodels, which would otherwise
    # slow the start of every run of the code location
    from experiments.run import measure, report

    as_of = context.partition_time_window.end.astimezone(UTC)
    with warehouse.get_connection() as con:
        campaigns = settings.get().campaigns
        measured = measure(con, as_of, campaigns_dir=campaigns)
        reports = report(con, settings.get().reports, as_of, campaigns)
    results = measured.results
    return dg.MaterializeResult(
        metadata={
            "units": measured.units,
            "result_rows": len(results),
            "cohort_rows": measured.cohort_rows,
            "campaigns": int(results.campaign_id.nunique()) if len(results) else 0,
            "sample_ratio_mismatch": dg.MetadataValue.json(measured.sample_ratio_mismatch),
            "guardrail_flags": dg.MetadataValue.json(measured.guardrail_flags),
            "variant_winners": dg.MetadataValue.json(measured.variant_winners),
            "program_incremental_revenue": (
                float(measured.program.incremental_revenue.iloc[0])
                if len(measured.program)
                else None
            ),
            "overview_report": dg.MetadataValue.path(str(reports["overview"])),
            "incrementality_report": dg.MetadataValue.path(str(reports["incrementality"])),
            "cohorts_report": dg.MetadataValue.path(str(reports["cohorts"])),
        }
    )


experiments_job = dg.define_asset_job("experiments_job", selection=[campaign_results])

# the warehouse resource comes from the ingest definitions
defs = dg.Definitions(assets=[campaign_results], jobs=[experiments_job])
