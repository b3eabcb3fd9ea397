"""The pipeline's settings: read from the environment once, at an entry point (the CLI, the
Dagster code location, a benchmark), and passed down. Safe defaults; see .env.example."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

WAREHOUSE_ENV = "RETENTEXT_WAREHOUSE"  # also read by dbt's profiles.yml
LANDING_ENV = "RETENTEXT_LANDING"
PARTITIONS_START_ENV = "RETENTEXT_PARTITIONS_START"
GATEWAY_ENV = "RETENTEXT_GATEWAY"
SENSOR_INTERVAL_ENV = "RETENTEXT_SENSOR_INTERVAL_SECONDS"
MARTS_MAX_LAG_ENV = "RETENTEXT_MARTS_MAX_LAG_HOURS"
ALERT_WEBHOOK_ENV = "RETENTEXT_ALERT_WEBHOOK"
CAMPAIGNS_ENV = "RETENTEXT_CAMPAIGNS"
# the SMS gateway's own variables (send_jobs.config.KannelConfig reads them from here)
GATEWAY_ENV_PREFIXES = ("RETENTEXT_KANNEL_", "RETENTEXT_SMPP_", "RETENTEXT_RECEIVER_",
                        "RETENTEXT_SMSC_", "RETENTEXT_SMS_", "RETENTEXT_LINKS_")  # fmt: skip


@dataclass(frozen=True)
class Settings:
    warehouse: Path  # the DuckDB file
    landing: Path  # <source>/<YYYY-MM-DD>.<csv|jsonl> landing files; gateway/ below it
    outbox: Path  # the outbox gateway's batches
    reports: Path  # the HTML reports
    kannel_state: Path  # the local Kannel's config, logs, secrets and journals
    links: Path  # the tracked links' registry: written at hand-over, read by the link service
    partitions_start: date  # the first day the daily partitions cover
    duckdb_memory_limit: str = "4GB"  # DuckDB spills to disk past this
    dbt_threads: int | None = None  # None: 1 for a first build, 2 after
    # Dagster operation (docs/operations.md)
    gateway: str = "outbox"  # the gateway scheduled sends use: outbox or kannel
    sensor_interval_s: int = 60  # how often the sensors look (landing, receipts, automation)
    send_cron: str = "0 * * * *"  # when the scheduled send runs (UTC): the top of each hour
    marts_max_lag_hours: float = 30.0  # marts as of longer ago than this are stale
    landing_deadline_cron: str = "0 6 * * *"  # yesterday's files are due by then (UTC)
    quarantine_warn_rate: float = 0.02  # a load quarantining more of its rows warns
    alerts_log: Path = Path("data/alerts.log")  # one line per failed run
    alert_webhook: str = ""  # Slack-compatible incoming webhook for failed runs
    campaigns: Path | None = None  # the shop's campaign files; None: send_jobs/campaigns
    # the gateway's variables as (name, value) pairs, passed on to KannelConfig.from_env
    gateway_env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str, default: str) -> str:
            return env.get(name) or default

        threads = get("RETENTEXT_DBT_THREADS", "")
        return cls(
            warehouse=Path(get(WAREHOUSE_ENV, "data/warehouse.duckdb")).resolve(),
            landing=Path(get(LANDING_ENV, "data/landing")).resolve(),
            outbox=Path(get("RETENTEXT_OUTBOX", "data/outbox")).resolve(),
            reports=Path(get("RETENTEXT_REPORTS", "data/reports")).resolve(),
            kannel_state=Path(get("RETENTEXT_KANNEL_STATE", "data/kannel")).resolve(),
            links=Path(get("RETENTEXT_LINKS", "data/links")).resolve(),
            partitions_start=_day(get(PARTITIONS_START_ENV, "2024-01-01")),
            duckdb_memory_limit=get("RETENTEXT_DUCKDB_MEMORY_LIMIT", "4GB"),
            dbt_threads=int(threads) if threads else None,
            gateway=get(GATEWAY_ENV, "outbox"),
            sensor_interval_s=_number(env, SENSOR_INTERVAL_ENV, "60", int),
            send_cron=get("RETENTEXT_SEND_CRON", "0 * * * *"),
            marts_max_lag_hours=_number(env, MARTS_MAX_LAG_ENV, "30", float),
            landing_deadline_cron=get("RETENTEXT_LANDING_DEADLINE_CRON", "0 6 * * *"),
            quarantine_warn_rate=_number(env, "RETENTEXT_QUARANTINE_WARN_RATE", "0.02", float),
            alerts_log=Path(get("RETENTEXT_ALERTS_LOG", "data/alerts.log")).resolve(),
            alert_webhook=get(ALERT_WEBHOOK_ENV, ""),
            campaigns=Path(env[CAMPAIGNS_ENV]).resolve() if env.get(CAMPAIGNS_ENV) else None,
            gateway_env=tuple(
                sorted((k, v) for k, v in env.items() if k.startswith(GATEWAY_ENV_PREFIXES) and v)
            ),  # fmt: skip
        )

    def as_env(self) -> dict[str, str]:
        """The environment that ``from_env`` reads back into these settings."""
        values = {
            WAREHOUSE_ENV: self.warehouse, LANDING_ENV: self.landing,
            "RETENTEXT_OUTBOX": self.outbox, "RETENTEXT_REPORTS": self.reports,
            "RETENTEXT_KANNEL_STATE": self.kannel_state, "RETENTEXT_LINKS": self.links,
            PARTITIONS_START_ENV: self.partitions_start.isoformat(),
            "RETENTEXT_DUCKDB_MEMORY_LIMIT": self.duckdb_memory_limit,
            "RETENTEXT_DBT_THREADS": self.dbt_threads or "",
            GATEWAY_ENV: self.gateway, SENSOR_INTERVAL_ENV: self.sensor_interval_s,
            "RETENTEXT_SEND_CRON": self.send_cron, MARTS_MAX_LAG_ENV: self.marts_max_lag_hours,
            "RETENTEXT_LANDING_DEADLINE_CRON": self.landing_deadline_cron,
            "RETENTEXT_QUARANTINE_WARN_RATE": self.quarantine_warn_rate,
            "RETENTEXT_ALERTS_LOG": self.alerts_log, ALERT_WEBHOOK_ENV: self.alert_webhook,
            CAMPAIGNS_ENV: self.campaigns or "",
            **dict(self.gateway_env),
        }  # fmt: skip
        return {name: str(value) for name, value in values.items()}

    @property
    def gateway_landing(self) -> Path:
        """Where the receiver appends DLRs and replies (``receipts/`` and ``replies/``)."""
        return self.landing / "gateway"

    def with_paths(self, **paths: str | Path | None) -> Settings:
        """The same settings with the given paths (command-line options) where they are set."""
        return replace(self, **{k: Path(v).resolve() for k, v in paths.items() if v})


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{PARTITIONS_START_ENV}={text!r} is not a date (YYYY-MM-DD)") from exc


def _number(env: Mapping[str, str], name: str, default: str, kind: type) -> int | float:
    text = env.get(name) or default
    try:
        return kind(text)
    except ValueError as exc:
        raise ValueError(f"{name}={text!r} is not a number") from exc
