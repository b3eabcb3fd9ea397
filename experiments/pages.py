"""The retention lead's pages: ``index.html`` (the program at a glance, one line per campaign
with a verdict in plain words) and one page per campaign (``campaign-<n>.html``: verdict,
lift over time with its always-valid band, guardrails, segments, variants head to head).

Every number shown is a cell ``data-table``/``data-field`` (plus the row's keys) with its
``data-format``, so a test, or anyone, can check it against the warehouse table it came from.

Verdicts (conversion, the campaign against its holdout, read on the always-valid interval
so that a daily look never misleads):
  works                 the interval is above zero
  harmful               the interval is below zero
  no effect detected    it spans zero and the test has reached its planned size (the
                        sequential tuning size, ``measurement.sequential_tuning``)
  too early to tell     it spans zero below the planned size, or no one was texted yet
  not measured          nobody was held out (a service message keeps no holdout)
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

VERDICTS = {
    "works": "works: texting raised conversion",
    "harmful": "harmful: texting lowered conversion",
    "no_effect": "no effect detected",
    "too_early": "too early to tell",
    "no_holdout": "not measured: nobody was held out",
}


def verdict(row, planned_units: float) -> str:
    """The verdict key of a campaign's vs_holdout / all / conversion row."""
    low, high = row.seq_abs_ci_low, row.seq_abs_ci_high
    if row.n_control == 0:
        return "no_holdout"
    if math.isnan(low) or math.isnan(high):
        return "too_early"
    if low > 0:
        return "works"
    if high < 0:
        return "harmful"
    return "no_effect" if row.n_control + row.n_treatment >= planned_units else "too_early"


def _top(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    keep = (results.comparison == "vs_holdout") & (results.segment == "all")
    return results[keep & (results.metric == metric)].set_index("campaign_id")


def _flags(guardrails: pd.DataFrame, campaign_id: str) -> list[str]:
    if guardrails.empty or campaign_id not in set(guardrails.campaign_id):
        return []
    row = guardrails[guardrails.campaign_id == campaign_id].iloc[0]
    names = {"delivery_rate": "delivery rate", "opt_out_rate_24h": "opt-outs within 24 h",
             "opt_out_rate_7d": "opt-outs within 7 days"}  # fmt: skip
    return [f"{label} {row[rate]:.2%} vs {row[f'{rate}_norm']:.2%} for the program"
            for rate, label in names.items() if bool(row[f"{rate}_flag"])]  # fmt: skip


def campaign_lines(results: pd.DataFrame, guardrails: pd.DataFrame,
                   planned_units: float) -> list[dict]:  # fmt: skip
    """One line per campaign for the overview, in campaign id order; ``page`` is its file."""
    if results.empty:
        return []
    conv, revenue = _top(results, "conversion"), _top(results, "revenue")
    lines = []
    for n, (campaign_id, row) in enumerate(conv.sort_index().iterrows(), start=1):
        key = verdict(row, planned_units)
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
