"""``retentext demo``: the whole loop on a simulated shop.

A year of history, then several days in which the pipeline loads yesterday's files and
builds the features at midnight, sends at 15:00 and 19:00 UTC through the outbox (east and
west of the Atlantic inside their windows), and the simulated customers respond to what went
out with a known true effect per campaign; they tap the texts' links through the link
service with a known click-through rate per campaign, and answer the appointment reminders'
question (C, R or free text) through the receiver. A week after the last send it measures every
campaign against its holdout, writes the reports, and prints each campaign's true effect
and click-through beside their estimates.

The demo runs the shipped campaigns from its own copies (``<out>/campaigns``) with their
holdouts raised to ``DEMO_HOLDOUT`` and their tests planned at ``DEMO_PLANNED_UNITS``: a
shop over a few days has too few customers for a 10% holdout to show a +25% effect, and a
demo that shows only noise teaches the wrong lesson. A real program keeps holdouts small
and runs longer.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from rich.table import Table

from orchestration.cli.common import console
from orchestration.cli.experiments import measure_and_print, report_and_print
from orchestration.cli.ingest import load_and_build, simulate_landing
from orchestration.cli.send import send_and_print
from warehouse.settings import Settings

# the true effects the world responds with (relative, on the chance to order in 7 days)
DEFAULT_EFFECTS = {"replenishment_reminder": 0.25, "winback": 0.15, "welcome": 0.10}
# the true share of texts whose link the recipient taps
DEFAULT_CLICK_THROUGH = {"replenishment_reminder": 0.12, "winback": 0.06,
                         "fragrance_launch": 0.09, "welcome": 0.15,
                         "checkout_reminder": 0.2}  # fmt: skip
# the share of appointment reminders answered with each option word (the rest: free text
# or silence)
DEFAULT_ANSWERS = {"C": 0.6, "R": 0.1}
SEND_HOURS = (15, 19)
DEMO_HOLDOUT = 0.5  # of every campaign that holds customers out at all
DEMO_PLANNED_UNITS = 2000  # read at the end of the demo: the fixed-horizon interval's verdict


def demo_campaigns(folder: Path) -> Path:
    """Copies of the shipped campaigns with their holdouts at ``DEMO_HOLDOUT`` and their
    tests planned at ``DEMO_PLANNED_UNITS``."""
    import yaml

    from send_jobs.campaign_specs import CAMPAIGNS_DIR

    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(CAMPAIGNS_DIR.glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        if spec.get("holdout_share"):
            spec["holdout_share"] = DEMO_HOLDOUT
            spec["planned_units"] = DEMO_PLANNED_UNITS
        (folder / path.name).write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    return folder


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

    from send_jobs import receipts
    from simulator.response import respond

    out = Path(args.out).resolve()
    # a demo starts from nothing: responses and sends of an earlier demo would leak in
    for name in ("landing", "outbox", "reports", "campaigns", "links"):
        shutil.rmtree(out / name, ignore_errors=True)
    settings = settings.with_paths(
        landing=out / "landing", warehouse=out / "warehouse.duckdb", outbox=out / "outbox",
        reports=out / "reports", campaigns=demo_campaigns(out / "campaigns"),
        links=out / "links",
    )  # fmt: skip
    landing, warehouse = settings.landing, settings.warehouse
    for path in (warehouse, warehouse.with_suffix(".duckdb.wal")):
        path.unlink(missing_ok=True)
    effects = _effects(args.effect)
    started = time.perf_counter()

    def step(code: int) -> None:
        if code:
            raise SystemExit(code)

    simulate_landing(landing, args.customers, args.start, args.history_days, args.seed, 0.002)
    first = args.start + timedelta(days=args.history_days)
    with _recipients(settings) as recipients:
        for i in range(args.send_days):
            day = first + timedelta(days=i)
            step(load_and_build(settings, _midnight(day)))
            for hour in SEND_HOURS:
                as_of = _midnight(day) + timedelta(hours=hour)
                # simulated time: the hand-over happens at the run's own time
                step(send_and_print(settings, as_of, as_of))
                con = duckdb.connect(str(warehouse))
                run_id = f"{day:%Y%m%d}T{hour:02d}0000Z"
                seed = args.seed * 1000 + i * 10 + hour
                n = respond(con, landing, effects, baseline_rate=args.baseline, seed=seed,
                            run_id=run_id)  # fmt: skip
                # the taps and answers draw from streams of their own, independent of the orders
                taps = recipients.tap(con, as_of + timedelta(hours=1), seed=seed * 10 + 1,
                                      run_id=run_id)  # fmt: skip
                answered = recipients.answer(con, as_of + timedelta(hours=2),
                                             seed=seed * 10 + 2, run_id=run_id)  # fmt: skip
                con.close()
                console.print(f"the world responded to run {run_id} with {n:,} orders, tapped "
                              f"{taps:,} links and answered {answered:,} questions")  # fmt: skip
    con = duckdb.connect(str(warehouse))
    receipts.ingest(con, settings.gateway_landing)  # the last run's taps
    con.close()
    end = _midnight(first + timedelta(days=args.send_days + 8))
    step(load_and_build(settings, end))
    step(measure_and_print(settings, end))
    step(report_and_print(settings, end))
    con = duckdb.connect(str(warehouse), read_only=True)
    results = con.execute("SELECT * FROM experiments.campaign_results").df()
    clicks = con.execute("SELECT * FROM experiments.click_through").df()
    conversations = _conversations(con)
    con.close()
    console.print(truth_table(results, effects))
    console.print(click_truth_table(clicks, DEFAULT_CLICK_THROUGH))
    console.print(conversations)
    seconds = time.perf_counter() - started
    console.print(f"holdouts at {DEMO_HOLDOUT:.0%} in this demo (campaign copies in "
                  f"{settings.campaigns}); demo took {seconds:.0f}s")  # fmt: skip
    return 0


def truth_table(results, effects: dict[str, float]) -> Table:
    """Each campaign's true relative effect on conversion beside the estimate."""
    table = Table(
        "campaign", "true effect on ordering", "texted", "held out", "estimated lift",
        "95% interval",
        "always-valid interval", "interval covers the truth",
        title="true effects against the estimates (conversion vs the holdout)",
    )  # fmt: skip
    top = results[(results.comparison == "vs_holdout") & (results.segment == "all")
                  & (results.metric == "conversion")].sort_values("campaign_id")  # fmt: skip
    for row in top.itertuples():
        truth = effects.get(row.campaign_id, 0.0)
        counts = (row.campaign_id, f"{truth:+.0%}", f"{row.n_treatment:,}", f"{row.n_control:,}")
        if row.n_control == 0 or row.n_treatment == 0 or row.rel_ci_low != row.rel_ci_low:
            table.add_row(*counts, "", "", "", row.note or "not estimable yet")  # why not
            continue
        covered = row.rel_ci_low <= truth <= row.rel_ci_high
        table.add_row(
            *counts, _pct(row.rel_lift), f"{_pct(row.rel_ci_low)} to {_pct(row.rel_ci_high)}",
            f"{_pct(row.seq_rel_ci_low)} to {_pct(row.seq_rel_ci_high)}",
            "yes" if covered else "no",
        )  # fmt: skip
    return table


def click_truth_table(clicks, truth: dict[str, float]) -> Table:
    """Each campaign's true click-through beside the measured one."""
    table = Table("campaign", "true click-through", "texts with the link", "measured",
                  "95% interval", "interval covers the truth",
                  title="true click-through against the measured one")  # fmt: skip
    for row in clicks[clicks.variant == "all"].sort_values("campaign_id").itertuples():
        rate = truth.get(row.campaign_id, 0.0)
        table.add_row(
            row.campaign_id, f"{rate:.1%}", f"{row.messages:,}", f"{row.ctr:.1%}",
            f"{row.ctr_ci_low:.1%} to {row.ctr_ci_high:.1%}",
            "yes" if row.ctr_ci_low <= rate <= row.ctr_ci_high else "no",
        )  # fmt: skip
    return table


def _conversations(con) -> str:
    """The reminded appointments by their answer, and the replies waiting for a person."""
    statuses = con.execute("""SELECT reply_status, count(*) FROM marts.fct_appointments
        WHERE appointment_id IN (SELECT occasion FROM sends.decisions
                                 WHERE campaign_id = 'appointment_reminder' AND outcome = 'sent')
        GROUP BY 1 ORDER BY 2 DESC""").fetchall()  # fmt: skip
    inbox = con.execute("SELECT count(*) FROM sends.inbox").fetchone()[0]
    answers = con.execute("SELECT count(*) FROM sends.messages WHERE run_id = 'answers'")
    return (
        "reminded appointments by their answer: "
        + (", ".join(f"{s} {n:,}" for s, n in statuses) or "none")
        + f"; answers queued {answers.fetchone()[0]:,}; replies waiting for a person {inbox:,}"
    )


@dataclass
class _Recipients:
    """The demo's simulated recipients: they tap their links through the link service and
    answer questions through the receiver, both in this process; ``now`` is the simulated
    moment both stamp what comes in with."""

    now: list[datetime]
    link_base: str
    links_port: int
    secret: str
    receiver_port: int

    def tap(self, con, at: datetime, *, seed: int, run_id: str) -> int:
        from simulator.clicks import tap_links

        self.now[:] = [at]
        done = tap_links(con, self.links_port, self.link_base, DEFAULT_CLICK_THROUGH,
                         seed=seed, run_id=run_id)  # fmt: skip
        if done.unexpected:
            raise RuntimeError(f"the link service refused demo taps: {done.unexpected[:5]}")
        return sum(done.people.values())

    def answer(self, con, at: datetime, *, seed: int, run_id: str) -> int:
        from simulator.conversations import answer_questions

        self.now[:] = [at]
        sent = answer_questions(con, self.receiver_port, self.secret, DEFAULT_ANSWERS,
                                seed=seed, run_id=run_id)  # fmt: skip
        return sum(sent.values())


@contextmanager
def _recipients(settings: Settings) -> Iterator[_Recipients]:
    """The link service and the receiver in this process (the outbox has no carrier to
    bring replies) for the demo's recipients."""
    import secrets

    from send_jobs import link_service, receiver
    from send_jobs.campaign_specs import load_program

    program, now, secret = load_program(), [], secrets.token_urlsafe(18)
    links = link_service.make_server(0, settings.links, settings.gateway_landing,
                                     program.link_base, clock=lambda: now[0])  # fmt: skip
    replies = receiver.make_server(0, secret, settings.gateway_landing, program.brand,
                                   clock=lambda: now[0])  # fmt: skip
    with receiver.serving(links), receiver.serving(replies):
        yield _Recipients(now, program.link_base, links.server_address[1], secret,
                          replies.server_address[1])  # fmt: skip


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{value:+.1%}"


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def register(sub) -> None:
    d = sub.add_parser("demo", help="history, several days of sends and responses, reports")
    d.add_argument("--out", default="data/demo")
    d.add_argument("--customers", type=int, default=40_000)
    d.add_argument("--start", type=date.fromisoformat, default=date(2025, 1, 1))
    d.add_argument("--history-days", type=int, default=365)
    d.add_argument("--send-days", type=int, default=5)
    d.add_argument("--baseline", type=float, default=0.30,
                   help="chance a messaged or held-out customer orders within 7 days")  # fmt: skip
    d.add_argument("--effect", action="append", default=[],
                   help="campaign=relative effect, e.g. winback=0.2 (repeatable)")  # fmt: skip
    d.add_argument("--seed", type=int, default=7)
    d.set_defaults(func=demo)
