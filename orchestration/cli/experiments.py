"""``retentext experiments``: holdout analysis and LTV cohorts into the warehouse."""

from __future__ import annotations

import argparse
import math
from datetime import datetime

from rich.table import Table

from orchestration.cli.common import as_of_type, console, open_warehouse, warn
from warehouse.settings import WAREHOUSE_ENV, Settings


def _ci(low: float, high: float, pct: bool = False, signed: bool = True) -> str:
    if math.isnan(low):
        return "n/a"
    sign = "+" if signed else ""
    return f"[{low:{sign}.1%}, {high:{sign}.1%}]" if pct else f"[{low:{sign}.2f}, {high:{sign}.2f}]"


def experiments(args: argparse.Namespace, settings: Settings) -> int:
    return measure_and_print(
        settings.with_paths(warehouse=args.warehouse), args.as_of, args.window_days
    )


def measure_and_print(settings: Settings, as_of: datetime, window_days: int = 7) -> int:
    """Every campaign against its holdout (``experiments.run.measure``), as a table."""
    from experiments.run import measure

    con = open_warehouse(settings)
    try:
        measured = measure(con, as_of, window_days, settings.campaigns)
    finally:
        con.close()
    results, units, seconds = measured.results, measured.units, measured.seconds
    cohort_rows = measured.cohort_rows
    if results.empty:
        console.print(f"no units whose {window_days}-day window has closed by {as_of}")
    else:
        console.print(_results_table(results, as_of, units, seconds))
    if len(measured.clicks):
        console.print(_clicks_table(measured.clicks))
    for flag in measured.guardrail_flags:
        warn(f"guardrail worse than the program's norm: {flag}")
    _print_uplift(measured)
    print(
        f"experiments as of {as_of.isoformat()}: {units:,} units, {len(results):,} "
        f"result rows, {cohort_rows:,} cohort rows in {seconds:.1f}s"
    )
    return 0


def _print_uplift(measured) -> None:
    """Per uplift-targeted campaign: its model's training and its Qini coefficient."""
    qini = {row.campaign_id: row for row in measured.uplift.itertuples()}
    for model in measured.uplift_models:
        said = (f"trained on {model.treated_units:,} texted and {model.control_units:,} "
                f"held-out units, {model.scored_customers:,} customers scored"
                if model.status == "trained" else f"not trained: {model.reason}")  # fmt: skip
        row = qini.get(model.campaign_id)
        if row is not None and row.qini_coefficient == row.qini_coefficient:
            said += (f"; Qini coefficient {row.qini_coefficient:.3f} USD per unit "
                     f"{_ci(row.ci_low, row.ci_high)}")  # fmt: skip
        console.print(f"uplift model, {model.campaign_id}: {said}")


def _results_table(results, as_of: datetime, units: int, seconds: float) -> Table:
    table = Table(
        "campaign", "treated", "held out", "conversion lift (95% CI)",
        "always-valid CI (daily looks)", "revenue/recipient lift", "RPR treated", "SRM",
        title=f"incrementality vs the campaign holdout as of "
        f"{as_of:%Y-%m-%d %H:%M}Z ({units:,} units, {seconds:.1f}s)",
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
            _ci(conv.seq_abs_ci_low, conv.seq_abs_ci_high, pct=True)
            if not math.isnan(conv.abs_lift) else "",
            f"{rev.abs_lift:+.2f} {_ci(rev.abs_ci_low, rev.abs_ci_high)}"
            if not math.isnan(rev.abs_lift) else "",
            f"{rev.treatment_mean:.2f}",
            "MISMATCH: untrustworthy" if conv.srm_flag else "ok",
        )  # fmt: skip
    return table


def _clicks_table(clicks) -> Table:
    table = Table(
        "campaign", "variant", "messages", "clicked", "click-through (95% CI)",
        "always-valid CI", "preview bots only", title="click-through of the tracked links",
    )  # fmt: skip
    for row in clicks.itertuples():
        table.add_row(
            row.campaign_id, row.variant, f"{row.messages:,}", f"{row.clicked:,}",
            f"{row.ctr:.2%} {_ci(row.ctr_ci_low, row.ctr_ci_high, pct=True, signed=False)}",
            _ci(row.ctr_seq_ci_low, row.ctr_seq_ci_high, pct=True, signed=False),
            f"{row.preview_only:,}",
        )  # fmt: skip
    return table


def report(args: argparse.Namespace, settings: Settings) -> int:
    return report_and_print(settings.with_paths(reports=args.out, warehouse=args.warehouse),
                            args.as_of)  # fmt: skip


def report_and_print(settings: Settings, as_of: datetime) -> int:
    """The HTML reports under the settings' reports folder; prints where they are."""
    from experiments.run import report as write_report

    con = open_warehouse(settings)
    try:
        paths = write_report(con, settings.reports, as_of, settings.campaigns)
    finally:
        con.close()
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def register(sub) -> None:
    e = sub.add_parser("experiments", help="holdout incrementality and LTV cohorts as of a time")
    e.add_argument("--as-of", type=as_of_type, required=True)
    e.add_argument("--warehouse", help=f"DuckDB file (default: ${WAREHOUSE_ENV})")
    e.add_argument("--window-days", type=int, default=7, help="attribution window")
    e.set_defaults(func=experiments)
    r = sub.add_parser("report", help="write the overview, campaign pages and detail reports")
    r.add_argument("--as-of", type=as_of_type, required=True)
    r.add_argument("--warehouse", help=f"DuckDB file (default: ${WAREHOUSE_ENV})")
    r.add_argument("--out", help="folder (default: $RETENTEXT_REPORTS or data/reports)")
    r.set_defaults(func=report)
