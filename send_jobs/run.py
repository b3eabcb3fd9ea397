"""One send run, as both the CLI and the Dagster send asset run it: load what the receiver
journaled (a STOP that came in counts), decide every campaign as of the run's time, then
hand the queued messages to the gateway, judged at the caller's hand-over clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from send_jobs import receipts
from send_jobs.campaign_specs import load_campaigns, load_program
from send_jobs.config import KannelConfig
from send_jobs.decide import RunResult, decide
from send_jobs.deliver import Clock, Delivery, deliver
from send_jobs.gateways import KannelGateway, OutboxGateway
from warehouse.settings import Settings

GATEWAYS = ("outbox", "kannel")


@dataclass
class SendRun:
    loaded: dict[str, int]  # the receiver's journal, loaded before deciding
    run: RunResult
    delivery: Delivery | None  # None for a dry run
    gateway: str


def make_gateway(name: str, settings: Settings, sender: str) -> KannelGateway | OutboxGateway:
    if name == "kannel":
        return KannelGateway(KannelConfig.from_settings(settings), sender)
    if name == "outbox":
        return OutboxGateway(settings.outbox)
    raise ValueError(f"gateway must be one of {', '.join(GATEWAYS)}, not {name!r}")


def send_run(
    con,
    settings: Settings,
    as_of: datetime,
    clock: Clock,
    *,
    gateway: str = "outbox",
    dry_run: bool = False,
    limit: int | None = None,
    on_decided: Callable[[RunResult], None] | None = None,
) -> SendRun:
    """Decide and deliver one run; ``on_decided`` sees the decisions before any hand-over."""
    program = load_program()
    campaigns = load_campaigns(settings.campaigns, program=program)
    chosen = None if dry_run else make_gateway(gateway, settings, program.sender)
    loaded = receipts.ingest(con, settings.gateway_landing)
    run = decide(con, program, campaigns, as_of, dry_run=dry_run)
    if on_decided:
        on_decided(run)
    if chosen is None:
        return SendRun(loaded, run, None, gateway)
    delivery = deliver(con, program, as_of, chosen, limit=limit, clock=clock,
                       replies=settings.gateway_landing, links=settings.links)  # fmt: skip
    return SendRun(loaded, run, delivery, gateway)
