"""Sends: an hourly-partitioned send run (each hour serves the recipients whose local window
is open; the others are deferred to a later hour) and the load of gateway receipts and
replies."""

from datetime import UTC, datetime

import dagster as dg
from dagster_duckdb import DuckDBResource

from orchestration.clock import handover_clock
from orchestration.defs.common import WAREHOUSE_POOL, SettingsResource, hourly
from send_jobs import receipts
from send_jobs import run as send_flow
from warehouse.freshness import marts_as_of

RECEIPTS = dg.AssetKey(["sends", "receipts"])
CLICKS = dg.AssetKey(["sends", "clicks"])
REPLY_ACTIONS = dg.AssetKey(["sends", "reply_actions"])


class SendConfig(dg.Config):
    gateway: str = ""  # outbox (files) or kannel; empty: RETENTEXT_GATEWAY (outbox)
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
    pool=WAREHOUSE_POOL,  # caps hold without it too: decide looks both ways
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
    s = settings.get()
    with warehouse.get_connection() as con:
        built_as_of = marts_as_of(con)
        done = send_flow.send_run(
            con, s, as_of, clock, gateway=config.gateway or s.gateway, dry_run=config.dry_run
        )
    run, delivery = done.run, done.delivery
    counts = {**dict(run.counts), **{f"loaded_{k}": v for k, v in done.loaded.items()}}
    if delivery is not None:
        counts.update({f"delivery_{k}": v for k, v in delivery.counts.items()})
        if delivery.halted:  # answers are recorded; the rest stays queued
            raise dg.Failure(
                f"the {done.gateway} gateway stopped handing over: {delivery.halted}",
                metadata={"run_id": run.run_id, **counts},
            )
    marts = built_as_of.isoformat() if built_as_of else ""
    return dg.MaterializeResult(
        metadata={"run_id": run.run_id, "resumed": run.resumed, "marts_as_of": marts, **counts}
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            RECEIPTS, group_name="sends", kinds={"duckdb"},
            description="Gateway receipts (DLRs) and replies appended by the receiver, loaded "
            "into sends.receipts and sends.inbound; message statuses move forward; STOP "
            "replies become opt-outs for the next run.",
        ),
        dg.AssetSpec(
            CLICKS, group_name="sends", kinds={"duckdb"},
            description="Taps on the tracked links appended by the link service, loaded into "
            "sends.clicks; they become sms_click events in the marts.",
        ),
        dg.AssetSpec(
            REPLY_ACTIONS, group_name="sends", kinds={"duckdb"},
            description="Replies that answered a text's question (reply_options), matched when "
            "the replies load: sends.reply_actions, and the answers queued once each.",
        ),
    ],
    pool=WAREHOUSE_POOL,
)  # fmt: skip
def gateway_receipts(warehouse: DuckDBResource, settings: SettingsResource):
    """One load of every journal under <landing>/gateway: receipts, replies (matched to open
    questions) and clicks."""
    with warehouse.get_connection() as con:
        counts = receipts.ingest(con, settings.get().gateway_landing)
    yield dg.MaterializeResult(asset_key=RECEIPTS, metadata=counts)
    yield dg.MaterializeResult(asset_key=CLICKS, metadata={"clicks": counts["clicks"]})
    yield dg.MaterializeResult(
        asset_key=REPLY_ACTIONS,
        metadata={k: counts[k] for k in ("answers_recorded", "answers_queued")},
    )


def _replay_time(handover_at: str) -> datetime | None:
    return datetime.fromisoformat(handover_at.replace("Z", "+00:00")) if handover_at else None


send_job = dg.define_asset_job("send_job", selection=[send_run])
receipts_job = dg.define_asset_job("receipts_job", selection=[gateway_receipts])
