"""Predicted customer value as an asset after the dbt build, in the same run (the same
automation condition as the dbt graph): the fit is plain code in ``targeting/``."""

from datetime import UTC

import dagster as dg
from dagster_duckdb import DuckDBResource

from orchestration.defs.common import LAST_UPDATED, WAREHOUSE_POOL
from orchestration.defs.features.assets import AFTER_INGEST
from targeting.customer_value import HISTORY, ensure_tables, predict_customer_value


@dg.asset(
    key=["predictions", "customer_value"],
    deps=[dg.AssetKey(["marts", "customer_purchase_history"])],
    group_name="features",
    kinds={"duckdb", "python"},
    pool=WAREHOUSE_POOL,
    automation_condition=AFTER_INGEST,
    description=(
        "Each buyer's probability alive (now and 30 days ago), expected purchases, purchase "
        "value and revenue over the next 90 days: BG/NBD and Gamma-Gamma fitted on the "
        "purchase histories at every build (predictions.customer_value_fits keeps the fits)."
    ),
)
def customer_value(
    context: dg.AssetExecutionContext, warehouse: DuckDBResource
) -> dg.MaterializeResult:
    with warehouse.get_connection() as con:
        as_of = con.execute(f"SELECT max(as_of) FROM {HISTORY}").fetchone()[0]
        if as_of is None:
            ensure_tables(con)
            context.log.info("no purchases yet: nothing to fit")
            return dg.MaterializeResult(metadata={"fits": "none: no purchases yet"})
        as_of = as_of.replace(tzinfo=UTC)  # the marts' times are UTC
        fits = predict_customer_value(con, as_of)
    metadata: dict = {"as_of": as_of.isoformat(), LAST_UPDATED: dg.MetadataValue.timestamp(as_of)}
    for fit in fits:
        metadata[fit.model] = dg.MetadataValue.json(
            {"status": fit.status, "reason": fit.reason, "parameters": fit.parameters,
             "customers": fit.customers, "distinct_rows": fit.distinct_rows}
        )  # fmt: skip
        if fit.status != "fitted":
            context.log.warning(f"{fit.model} not fitted: {fit.reason}")
    return dg.MaterializeResult(metadata=metadata)
