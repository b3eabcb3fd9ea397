"""``retentext experiments``: holdout analysis and LTV cohorts into the warehouse."""

from __future__ import annotations

import argparse
import math
import time

from rich.console import Console
from rich.table import Table

from orchestration import settings

console = Console(stderr=True, soft_wrap=True)


def _ci(low: float, high: float, pct: bool = False) -> str:
    if math.isnan(low):
        return "n/a"
    return f"[{low:+.1%}, {high:+.1%}]" if pct else f"[{low:+.2f}, {high:+.2f}]"


def experiments(args: argparse.Namespace) -> int:
    from experiments.analysis import analyse, build_cohorts
    from orchestration.cli_send import connect_warehouse
    from send_jobs.campaign_specs import load_campaigns

    shares = {c.id: c.holdout_share for c in load_campaigns()}
    con = connect_warehouse(args.warehouse)
    started = time.perf_counter()
    results = analyse(con, args.as_of, shares, args.window_days)
    units = con.execute("SELECT count(*) FROM experiments.units").fetchone()[0]
    cohort_rows = build_cohorts(con)
    con.close()
    seconds = time.perf_counter() - started
    if results.empty:
        console.print(f"no units whose {args.window_days}-day window has closed by {args.as_of}")
        return 0
    table = Table(
        "campaign", "treated", "held out", "conversion lift (95% CI)", "revenue/recipient lift",
        "RPR treated", "SRM", title=f"incrementality vs the campaign holdout as of "
        f"{args.as_of:%Y-%m-%d %H:%M}Z ({units:,} units, {seconds:.1f}s)",
    )  # fmt: skip
    top = results[(results.comparison == "vs_holdout") & (results.segment == "all")]
    for campaign_id, part in top.groupby("campaign_id"):
        conv = part[part.metric == "conversion"].iloc[0]
        rev = part[part.metric == "revenue"].iloc[0]
        table.add_row(
            campaign_id,
            f"{conv.n_treatment:,}",
            f"{conv.n_control:,}",
            f"{conv.abs_lift:+.2%} {_ci(conv.abs_ci_low, conv.abs_ci_high, pct=True)}"
            if not math.isnan(conv.abs_lift) else conv.note,
            f"{rev.abs_lift:+.2f} {_ci(rev.abs_ci_low, rev.abs_ci_high)}"
            if not math.isnan(rev.abs_lift) else rev.note,
            f"{rev.treatment_mean:.2f}",
            "MISMATCH: untrustworthy" if conv.srm_flag else "ok",
        )  # fmt: skip
    console.print(table)
    print(
        f"experiments as of {args.as_of.isoformat()}: {units:,} units, {len(results):,} "
        f"result rows, {cohort_rows:,} cohort rows in {seconds:.1f}s"
    )
    return 0


def report(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from experiments.reports import write_reports
    from orchestration.cli_send import connect_warehouse

    folder = Path(args.out or os.environ.get("RETENTEXT_REPORTS", "data/reports")).resolve()
    con = connect_warehouse(args.warehouse)
    paths = write_reports(con, folder, f"{args.as_of:%Y-%m-%d %H:%M} UTC")
    con.close()
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def register(sub, as_of_type) -> None:
    e = sub.add_parser("experiments", help="holdout incrementality and LTV cohorts as of a time")
    e.add_argument("--as-of", type=as_of_type, required=True)
    e.add_argument("--warehouse", help=f"DuckDB file (default: ${settings.WAREHOUSE_ENV})")
    e.add_argument("--window-days", type=int, default=7, help="attribution window")
    e.set_defaults(func=experiments)
    r = sub.add_parser("report", help="write incrementality.html and cohorts.html")
    r.add_argument("--as-of", type=as_of_type, required=True)
    r.add_argument("--warehouse", help=f"DuckDB file (default: ${settings.WAREHOUSE_ENV})")
    r.add_argument("--out", help="folder (default: $RETENTEXT_REPORTS or data/reports)")
    r.set_defaults(func=report)
