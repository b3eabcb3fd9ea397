"""The retention lead's pages: ``index.html`` (the program at a glance, one line per campaign
with a verdict in plain words) and one page per campaign (``campaign-<n>.html``: verdict,
lift over time with its always-valid band, guardrails, segments, variants head to head).

Every number shown is a cell ``data-table``/``data-field`` (plus the row's keys) with its
``data-format``, so a test, or anyone, can check it against the warehouse table it came from.

Verdicts (conversion, the campaign against its holdout). Before the test reaches its
planned size (the campaign's ``planned_units``, else ``measurement.sequential_tuning``) they
read the always-valid interval, so that a daily look never misleads; from the planned size
on, the fixed-horizon 95% interval:
  works                 the interval is above zero
  harmful               the interval is below zero
  no effect detected    it spans zero at or past the planned size
  too early to tell     it spans zero before the planned size, or no one was texted yet
  not measured          nobody was held out (a service message keeps no holdout)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go

from experiments.guardrails import flagged_rates
from experiments.stats import SEQUENTIAL_TUNING

RATE_NAMES = {"delivery_rate": "delivery rate", "opt_out_rate_24h": "opt-outs within 24 h",
              "opt_out_rate_7d": "opt-outs within 7 days"}  # fmt: skip

VERDICTS = {
    "works": "works: texting raised conversion",
    "harmful": "harmful: texting lowered conversion",
    "no_effect": "no effect detected",
    "too_early": "too early to tell",
    "no_holdout": "not measured: nobody was held out",
}


def verdict(row, planned_units: float) -> str:
    """The verdict key of a campaign's vs_holdout / all / conversion row."""
    if row.n_control == 0:
        return "no_holdout"
    at_horizon = row.n_control + row.n_treatment >= planned_units
    low, high = ((row.abs_ci_low, row.abs_ci_high) if at_horizon
                 else (row.seq_abs_ci_low, row.seq_abs_ci_high))  # fmt: skip
    if math.isnan(low) or math.isnan(high):
        return "too_early"
    if low > 0:
        return "works"
    if high < 0:
        return "harmful"
    return "no_effect" if at_horizon else "too_early"


def _top(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    keep = (results.comparison == "vs_holdout") & (results.segment == "all")
    return results[keep & (results.metric == metric)].set_index("campaign_id")


def _flags(guardrails: pd.DataFrame, campaign_id: str) -> list[str]:
    if guardrails.empty or campaign_id not in set(guardrails.campaign_id):
        return []
    row = guardrails[guardrails.campaign_id == campaign_id].iloc[0]
    return [f"{RATE_NAMES[rate]} {value:.2%} vs {norm:.2%} for the program"
            for rate, value, norm in flagged_rates(row)]  # fmt: skip


def campaign_lines(results: pd.DataFrame, guardrails: pd.DataFrame,
                   planned_units: Mapping[str, float]) -> list[dict]:  # fmt: skip
    """One line per campaign for the overview, in campaign id order; ``page`` is its file.
    A campaign missing from ``planned_units`` is planned at ``SEQUENTIAL_TUNING``."""
    if results.empty:
        return []
    conv, revenue = _top(results, "conversion"), _top(results, "revenue")
    lines = []
    for n, (campaign_id, row) in enumerate(conv.sort_index().iterrows(), start=1):
        key = verdict(row, planned_units.get(campaign_id, SEQUENTIAL_TUNING))
        lines.append({
            "id": campaign_id, "page": f"campaign-{n}.html", "row": row,
            "revenue": revenue.loc[campaign_id], "verdict": key,
            "verdict_text": VERDICTS[key], "flags": _flags(guardrails, campaign_id),
        })  # fmt: skip
    return lines


def program_totals(guardrails: pd.DataFrame) -> dict:
    """Messages, delivery and opt-outs over every campaign."""
    if guardrails.empty:
        return {}
    g = guardrails.sum(numeric_only=True)

    def share(hits: str, n: str) -> float:
        return g[hits] / g[n] if g[n] else math.nan

    return {"messages": int(g["messages"]), "cost": float(g["cost"]),
            "delivery_rate": share("delivered", "settled"),
            "opt_out_rate_7d": share("opt_outs_7d", "exposed_7d")}  # fmt: skip


def lift_over_time(history: pd.DataFrame, campaign_id: str) -> go.Figure:
    """The campaign's relative conversion lift at each analysis date, with the fixed-horizon
    interval and the wider always-valid band."""
    keep = ((history.campaign_id == campaign_id) & (history.comparison == "vs_holdout")
            & (history.segment == "all") & (history.metric == "conversion"))  # fmt: skip
    part = history[keep].sort_values("as_of")
    x = [str(t) for t in part.as_of]
    fig = go.Figure([
        go.Scatter(x=x + x[::-1], y=list(part.seq_rel_ci_high * 100)
                   + list(part.seq_rel_ci_low * 100)[::-1], fill="toself", opacity=0.15,
                   line={"width": 0}, name="always-valid 95% band"),
        go.Scatter(x=x + x[::-1], y=list(part.rel_ci_high * 100)
                   + list(part.rel_ci_low * 100)[::-1], fill="toself", opacity=0.3,
                   line={"width": 0}, name="fixed-horizon 95% interval"),
        go.Scatter(x=x, y=part.rel_lift * 100, mode="lines+markers", name="relative lift"),
    ])  # fmt: skip
    fig.add_hline(y=0, line_dash="dot")
    fig.update_layout(title="Conversion lift over time (%)", xaxis_title="analysis date",
                      yaxis_title="relative lift, %")  # fmt: skip
    return fig


def qini_chart(curves: pd.DataFrame, campaign_id: str) -> go.Figure:
    """The campaign's Qini curve: the incremental margin found by texting the top share of
    the evaluated units by predicted uplift, against a random order's straight line."""
    part = curves[curves.campaign_id == campaign_id].sort_values("fraction")
    x = list(part.fraction * 100)
    end = float(part.qini.iloc[-1]) if len(part) else 0.0
    fig = go.Figure([
        go.Scatter(x=x, y=part.qini, mode="lines", name="ranked by the model"),
        go.Scatter(x=[0, 100], y=[0, end], mode="lines", line={"dash": "dot"},
                   name="random order"),
    ])  # fmt: skip
    fig.update_layout(title="Qini curve (randomised units, later period)",
                      xaxis_title="share of units texted, highest predicted uplift first, %",
                      yaxis_title="incremental margin, USD")  # fmt: skip
    return fig
