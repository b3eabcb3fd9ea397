"""Sends: an hourly-partitioned send run (each hour serves the recipients whose local window
is open; the others are deferred to a later hour) and a sensor that loads gateway receipts
and replies as the receiver appends them."""

import hashlib
from datetime import UTC, datetime

import dagster as dg
from dagster_duckdb import DuckDBResource

from orchestration.clock import handover_clock
from orchestration.defs.common import SettingsResource, hourly
from send_jobs import receipts
from send_jobs import run as send_flow

RECEIPTS = dg.AssetKey(["sends", "receipts"])


class SendConfig(dg.Config):
    gateway: str = "outbox"  # outbox (files) or kannel
    dry_run: bool = False
    # empty: hand-over is judged at the wall clock; an ISO time replays a run as if handed
    # over then (simulations, tests)
    handover_at: str = ""


@dg.asset(
    key=["sends", "run"],
    group_name="sends",
    partitions_def=hourly,
    deps=[RECEIPTS, dg.AssetKey(["marts", "dim_customers"])],
    kinds={"duckdb"},
    # one send run at a time: the instance's dagster.yaml limits the pool
    # (concurrency: pools: default_limit: 1); caps hold without it (decide looks both ways)
    pool="retentext_sends",
    description="One send run as of the partition's hour: decisions for every candidate in "
    "sends.decisions, messages queued and handed to the gateway.",
)
def send_run(
    context: dg.AssetExecutionContext,
    config: SendConfig,
    warehouse: DuckDBResource,
    settings: SettingsResource,
) -> dg.MaterializeResult:
    as_of = context.partition_time_window.start.astimezone(UTC)
    # consent, quiet hours and expiry are judged when each chunk is handed over, with the
    # replies that came in up to then
    clock = handover_clock(_replay_time(config.handover_at))
    with warehouse.get_connection() as con:
        done = send_flow.send_run(
            con, settings.get(), as_of, clock, gateway=config.gateway, dry_run=config.dry_run
        )
    run, delivery = done.run, done.delivery
    counts = dict(run.counts)
    if delivery is not None:
        counts.update({f"delivery_{k}": v for k, v in delivery.counts.items()})
        if delivery.halted:  # answers are recorded; the rest stays queued
            raise dg.Failure(
                f"the {done.gateway} gateway stopped handing over: {delivery.halted}",
                metadata={"run_id": run.run_id, **counts},
            )
    return dg.MaterializeResult(metadata={"run_id": run.run_id, "resumed": run.resumed, **counts})


@dg.asset(
    key=RECEIPTS,
    group_name="sends",
    kinds={"duckdb"},
    description="Gateway receipts (DLRs) and replies appended by the receiver, loaded into "
    "sends.receipts and sends.inbound; message statuses move forward; STOP replies become "
    "opt-outs for the next run.",
)
def gateway_receipts(warehouse: DuckDBResource, settings: SettingsResource) -> dg.MaterializeResult:
    with warehouse.get_connection() as con:
        counts = receipts.ingest(con, settings.get().gateway_landing)
    return dg.MaterializeResult(metadata=counts)


def _replay_time(handover_at: str) -> datetime | None:
    return datetime.fromisoformat(handover_at.replace("Z", "+00:00")) if handover_at else None


send_job = dg.define_asset_job("send_job", selection=[send_run])
receipts_job = dg.define_asset_job("receipts_job", selection=[gateway_receipts])


@dg.sensor(job=receipts_job, minimum_interval_seconds=30)
def gateway_receipts_sensor(context: dg.SensorEvaluationContext, settings: SettingsResource):
    """Requests a load whenever the receiver's files grew since the last one."""
    root = settings.get().gateway_landing
    sizes = (
        sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.glob("*/*.jsonl"))
        if root.exists()
        else []
    )
    cursor = hashlib.md5(repr(sizes).encode()).hexdigest()
    if sizes and cursor != context.cursor:
        context.update_cursor(cursor)
        yield dg.RunRequest(run_key=cursor)


defs = dg.Definitions(
    assets=[send_run, gateway_receipts],
    jobs=[send_job, receipts_job],
    schedules=[dg.build_schedule_from_partitioned_job(send_job)],
    sensors=[gateway_receipts_sensor],
)  # the warehouse resource comes from the ingest definitions
