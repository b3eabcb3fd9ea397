"""Self-contained HTML reports for retention leads: ``incrementality.html`` and
``cohorts.html``. plotly.js is embedded once per file (no CDN, opens offline); every value
that comes from data is HTML-escaped. Each number shown carries ``data-*`` attributes naming
its table row, so tests (and anyone) can check it against the warehouse tables.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222}
h1{font-size:1.6rem}h2{margin-top:2.5rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:right}
th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:.5rem 1rem;margin:.5rem 0}
.bad{background:#fdecea;border-left:4px solid #d93025;padding:.5rem 1rem;margin:.5rem 0}
.note{color:#666;font-size:.85rem}
"""
# Records script errors and how many charts drew, for people and for the browser test.
PROBE = """<script>
window.addEventListener('error', function (e) {
  var el = document.documentElement;
  el.setAttribute('data-script-errors',
                  (el.getAttribute('data-script-errors') || '') + e.message + ';');
});
window.addEventListener('load', function () {
  document.documentElement.setAttribute(
    'data-charts-drawn', document.querySelectorAll('.js-plotly-plot .main-svg').length);
});
</script>"""
METRIC_NAMES = {
    "conversion": "Conversion (any order)",
    "campaign_outcome": "Campaign outcome",
    "revenue": "Revenue per recipient",
    "orders": "Orders per recipient",
}


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _num(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return format(value, fmt)


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}'
        f"</title><style>{STYLE}</style>{PROBE}</head><body>{body}</body></html>"
    )


class _Charts:
    """Embeds plotly.js with the first chart only."""

    def __init__(self) -> None:
        self.first = True

    def html(self, fig: go.Figure, div_id: str) -> str:
        fig.update_layout(margin={"l": 60, "r": 20, "t": 40, "b": 40}, height=320)
        out = fig.to_html(
            full_html=False, include_plotlyjs=self.first, div_id=div_id,
            config={"displaylogo": False, "responsive": True},
        )  # fmt: skip
        self.first = False
        return out


def incrementality_html(results: pd.DataFrame, as_of) -> str:
    charts = _Charts()
    parts = [
        "<h1>Incrementality of SMS campaigns</h1>",
        f"<p>As of {_e(as_of)}. Each campaign is compared with its holdout (customers who "
        "passed the same checks but were not texted); intent to treat, 7-day window after "
        "each decision. Intervals are 95%.</p>",
    ]
    if results.empty:
        parts.append("<p class='warn'>No campaign has customers whose measurement window has "
                     "closed yet.</p>")  # fmt: skip
        return _page("Incrementality", "".join(parts))
    main = results[results.comparison == "vs_holdout"]
    for campaign_id, part in main.groupby("campaign_id", sort=True):
        cid = _e(campaign_id)
        parts.append(f"<h2 id='campaign-{cid}'>{cid}</h2>")
        top = part[part.segment == "all"].set_index("metric")
        conv = top.loc["conversion"]
        if bool(conv.srm_flag):
            parts.append(
                "<div class='bad' data-warning='srm'>Sample ratio mismatch: the split between "
                "texted and held-out customers differs from the configured one (p = "
                f"{_num(conv.srm_p_value, '.2g')}). Something in assignment or logging is "
                "wrong; do not act on these results until it is explained.</div>"
            )
        if not math.isnan(conv.mde) and (
            math.isnan(conv.abs_lift) or abs(conv.abs_lift) < conv.mde
        ):
            parts.append(
                "<div class='warn' data-warning='power'>Low power: with "
                f"{int(conv.n_control + conv.n_treatment):,} customers this test can only "
                f"detect a change in conversion of about {_num(conv.mde, '.1%')} points; a "
                "smaller true effect would look like no effect.</div>"
            )
        notes = sorted({n for n in part.note if n})
        for note in notes:
            parts.append(f"<p class='note' data-note>{_e(note)}</p>")
        rev = top.loc["revenue"]
        parts.append(
            "<table data-summary><tr><th>measure</th><th>value</th></tr>"
            + "".join(
                f"<tr><td>{_e(label)}</td><td data-campaign='{cid}' data-metric='{metric}' "
                f"data-field='{field}'>{_num(value, fmt)}</td></tr>"
                for label, metric, field, value, fmt in [
                    ("texted", "conversion", "n_treatment", conv.n_treatment, ","),
                    ("held out", "conversion", "n_control", conv.n_control, ","),
                    (
                        "conversion, texted",
                        "conversion",
                        "treatment_mean",
                        conv.treatment_mean,
                        ".2%",
                    ),
                    (
                        "conversion, held out",
                        "conversion",
                        "control_mean",
                        conv.control_mean,
                        ".2%",
                    ),
                    ("conversion lift (points)", "conversion", "abs_lift", conv.abs_lift, "+.2%"),
                    (
                        "revenue per recipient, texted",
                        "revenue",
                        "treatment_mean",
                        rev.treatment_mean,
                        ",.2f",
                    ),
                    (
                        "incremental revenue",
                        "revenue",
                        "incremental_revenue",
                        rev.incremental_revenue,
                        ",.2f",
                    ),
                    ("message cost", "revenue", "cost", rev.cost, ",.2f"),
                    (
                        "cost per incremental conversion",
                        "conversion",
                        "cost_per_incremental_conversion",
                        conv.cost_per_incremental_conversion,
                        ",.2f",
                    ),
                ]
            )  # fmt: skip
            + "</table>"
        )
        rows = part[part.metric == "conversion"].sort_values("segment")
        fig = go.Figure(
            go.Scatter(
                x=rows.rel_lift * 100, y=[str(s) for s in rows.segment], mode="markers",
                error_x={"type": "data", "symmetric": False,
                         "array": (rows.rel_ci_high - rows.rel_lift) * 100,
                         "arrayminus": (rows.rel_lift - rows.rel_ci_low) * 100},
                marker={"size": 9}, name="relative lift",
            )
        )  # fmt: skip
        fig.add_vline(x=0, line_dash="dot")
        fig.update_layout(title="Conversion lift by segment (%, 95% interval)",
                          xaxis_title="relative lift, %")  # fmt: skip
        parts.append(charts.html(fig, f"chart-{cid}"))
        parts.append(
            "<table data-segments><tr><th>segment</th><th>metric</th><th>held out</th>"
            "<th>texted</th><th>lift</th><th>95% interval</th><th>relative</th>"
            "<th>p</th><th>p (BH)</th></tr>"
            + "".join(
                f"<tr><td>{_e(r.segment)}</td><td>{_e(METRIC_NAMES.get(r.metric, r.metric))}"
                f"</td><td>{r.n_control:,}</td><td>{r.n_treatment:,}</td>"
                f"<td data-campaign='{cid}' data-segment='{_e(r.segment)}' "
                f"data-metric='{_e(r.metric)}' data-field='abs_lift'>"
                f"{_num(r.abs_lift, '+.4f')}</td>"
                f"<td>{_num(r.abs_ci_low, '+.4f')} to {_num(r.abs_ci_high, '+.4f')}</td>"
                f"<td>{_num(r.rel_lift, '+.1%')}</td><td>{_num(r.p_value, '.3g')}</td>"
                f"<td>{_num(r.p_value_adjusted, '.3g')}</td></tr>"
                for r in part.sort_values(["metric", "segment"]).itertuples()
            )
            + "</table>"
        )
    return _page("Incrementality", "".join(parts))


def cohorts_html(cohorts: pd.DataFrame) -> str:
    charts = _Charts()
    parts = ["<h1>LTV cohorts</h1>", "<p>Customers grouped by the month of their first order. "
             "Share active: customers of the cohort who ordered in that month. Revenue per "
             "customer is cumulative and divided by the cohort size.</p>"]  # fmt: skip
    if cohorts.empty:
        parts.append("<p class='warn'>No orders yet.</p>")
        return _page("LTV cohorts", "".join(parts))
    allc = cohorts[cohorts["group"] == "all"]
    grid = allc.pivot(index="cohort_month", columns="months_since_first_order",
                      values="active_share")  # fmt: skip
    fig = go.Figure(go.Heatmap(z=grid.to_numpy() * 100, x=list(grid.columns),
                               y=[str(i) for i in grid.index], colorscale="Blues",
                               colorbar={"title": "% active"}))  # fmt: skip
    fig.update_layout(title="Retention: % of the cohort ordering, by months since first order",
                      xaxis_title="months since first order", height=420)  # fmt: skip
    parts.append(charts.html(fig, "chart-retention"))
    fig = go.Figure()
    curves = []
    for group, part in cohorts.groupby("group"):
        weighted = part.assign(w=part.cumulative_revenue_per_customer * part.cohort_size)
        curve = weighted.groupby("months_since_first_order").agg(
            w=("w", "sum"), n=("cohort_size", "sum")
        )
        curve["value"] = curve.w / curve.n
        curves.append((group, curve))
        fig.add_trace(go.Scatter(x=list(curve.index), y=curve["value"], mode="lines+markers",
                                 name=str(group)))  # fmt: skip
    fig.update_layout(title="Cumulative revenue per customer: all, exposed, global control",
                      xaxis_title="months since first order")  # fmt: skip
    parts.append(charts.html(fig, "chart-ltv"))
    parts.append("<table data-ltv><tr><th>group</th><th>months since first order</th>"
                 "<th>revenue per customer</th></tr>"
                 + "".join(f"<tr><td>{_e(g)}</td><td>{k}</td><td data-group='{_e(g)}' "
                           f"data-month='{k}'>{v:,.2f}</td></tr>"
                           for g, c in curves for k, v in c["value"].items())
                 + "</table>")  # fmt: skip
    return _page("LTV cohorts", "".join(parts))


def write_reports(con, folder: Path, as_of) -> dict[str, Path]:
    """Both reports from the warehouse's experiments tables."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tables = {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'experiments'"
    ).fetchall()}  # fmt: skip
    results = (
        con.execute("SELECT * FROM experiments.campaign_results").df()
        if "campaign_results" in tables
        else pd.DataFrame()
    )
    cohorts = (
        con.execute("SELECT * FROM experiments.ltv_cohorts").df()
        if "ltv_cohorts" in tables
        else pd.DataFrame()
    )
    out = {
        "incrementality": folder / "incrementality.html",
        "cohorts": folder / "cohorts.html",
    }
    for name, text in (
        ("incrementality", incrementality_html(results, as_of)),
        ("cohorts", cohorts_html(cohorts)),
    ):
        tmp = out[name].with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out[name])
    return out
