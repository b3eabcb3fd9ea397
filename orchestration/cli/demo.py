"""``retentext demo``: the whole loop on a simulated shop.

A year of history, then several days in which the pipeline loads yesterday's files and
builds the features at midnight, sends at 15:00 and 19:00 UTC through the outbox (east and
west of the Atlantic inside their windows), and the simulated customers respond to what went
out with a known true effect per campaign. A week after the last send it measures every
campaign against its holdout and writes the reports.
"""

from __future__ import annotations

import argparse
import shutil
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from orchestration.cli.common import console
from orchestration.cli.experiments import measure_and_print, report_and_print
from orchestration.cli.ingest import load_and_build, simulate_landing
from orchestration.cli.send import send_and_print
from warehouse.settings import Settings

# the true effects the world responds with (relative, on the chance to order in 7 days)
DEFAULT_EFFECTS = {"replenishment_reminder": 0.25, "winback": 0.15, "welcome": 0.10}
SEND_HOURS = (15, 19)


def _effects(pairs: list[str]) -> dict[str, float]:
    effects = dict(DEFAULT_EFFECTS)
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            effects[name] = float(value)
        except ValueError as exc:
            raise ValueError(f"--effect {pair!r}: expected campaign=0.25") from exc
    return effects


def demo(args: argparse.Namespace, settings: Settings) -> int:
    import duckdb

    from simulator.response import respond_to_run

    out = Path(args.out).resolve()
    settings = settings.with_paths(
        landing=out / "landing", warehouse=out / "warehouse.duckdb", outbox=out / "outbox",
        reports=out / "reports",
    )  # fmt: skip
    landing, warehouse = settings.landing, settings.warehouse
    # a demo starts from nothing: responses and sends of an earlier demo would leak in
    for folder in (landing, settings.outbox, settings.reports):
        shutil.rmtree(folder, ignore_errors=True)
    for path in (warehouse, warehouse.with_suffix(".duckdb.wal")):
        path.unlink(missing_ok=True)
    effects = _effects(args.effect)
    started = time.perf_counter()

    def step(code: int) -> None:
        if code:
            raise SystemExit(code)

    simulate_landing(landing, args.customers, args.start, args.history_days, args.seed, 0.002)
    first = args.start + timedelta(days=args.history_days)
    for i in range(args.send_days):
        day = first + timedelta(days=i)
        step(load_and_build(settings, _midnight(day)))
        for hour in SEND_HOURS:
            as_of = _midnight(day) + timedelta(hours=hour)
            # simulated time: the hand-over happens at the run's own time
            step(send_and_print(settings, as_of, as_of))
            con = duckdb.connect(str(warehouse))
            run_id = f"{day:%Y%m%d}T{hour:02d}0000Z"
            n = respond_to_run(con, run_id, landing, effects, baseline_rate=args.baseline,
                               seed=args.seed * 1000 + i * 10 + hour)  # fmt: skip
            con.close()
            console.print(f"the world responded to run {run_id} with {n:,} orders")
    end = _midnight(first + timedelta(days=args.send_days + 8))
    step(load_and_build(settings, end))
    step(measure_and_print(settings, end))
    step(report_and_print(settings, end))
    console.print(
        f"true effects: {', '.join(f'{k} {v:+.0%}' for k, v in effects.items())}; others none"
        f" (demo took {time.perf_counter() - started:.0f}s)"
    )
    return 0


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def register(sub) -> None:
    d = sub.add_parser("demo", help="history, several days of sends and responses, reports")
    d.add_argument("--out", default="data/demo")
    d.add_argument("--customers", type=int, default=3000)
    d.add_argument("--start", type=date.fromisoformat, default=date(2025, 1, 1))
    d.add_argument("--history-days", type=int, default=365)
    d.add_argument("--send-days", type=int, default=5)
    d.add_argument("--baseline", type=float, default=0.15,
                   help="chance a messaged or held-out customer orders within 7 days")  # fmt: skip
    d.add_argument("--effect", action="append", default=[],
                   help="campaign=relative effect, e.g. winback=0.2 (repeatable)")  # fmt: skip
    d.add_argument("--seed", type=int, default=7)
    d.set_defaults(func=demo)
