"""Self-contained HTML reports: the retention lead's overview (``index.html``) and a page per
campaign (``experiments.pages``), the analysts' ``incrementality.html`` and ``cohorts.html``,
rendered from the Jinja2 templates in ``templates/`` (autoescaped: every
value that comes from data is HTML-escaped). plotly.js is embedded once per file (no CDN,
opens offline). Each number shown carries ``data-*`` attributes naming its table row, so
tests (and anyone) can check it against the warehouse tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import jinja2
import pandas as pd
import plotly.graph_objects as go
from markupsafe import Markup

from experiments.analysis import WINNER_RULE, variant_winners
from experiments.pages import campaign_lines, lift_over_time, program_totals, qini_chart

METRIC_NAMES = {
    "conversion": "Conversion (any order)",
    "campaign_outcome": "Campaign outcome",
    "revenue": "Revenue per recipient",
    "orders": "Orders per recipient",
}
# (label, metric row, field, number format) of each campaign's summary table
SUMMARY = [
    ("texted", "conversion", "n_treatment", ","),
    ("held out", "conversion", "n_control", ","),
    ("conversion, texted", "conversion", "treatment_mean", ".2%"),
    ("conversion, held out", "conversion", "control_mean", ".2%"),
    ("conversion lift (points)", "conversion", "abs_lift", "+.2%"),
    ("revenue per recipient, texted", "revenue", "treatment_mean", ",.2f"),
    ("incremental revenue", "revenue", "incremental_revenue", ",.2f"),
    ("message cost", "revenue", "cost", ",.2f"),
    ("cost per incremental conversion", "conversion", "cost_per_incremental_conversion", ",.2f"),
]


def _num(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return format(value, fmt)


TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters["num"] = _num


class _Charts:
    """Embeds plotly.js with the first chart only."""

    def __init__(self) -> None:
        self.first = True

    def html(self, fig: go.Figure, div_id: str) -> Markup:
        fig.update_layout(margin={"l": 60, "r": 20, "t": 40, "b": 40}, height=320)
        out = fig.to_html(
            full_html=False, include_plotlyjs=self.first, div_id=div_id,
            config={"displaylogo": False, "responsive": True},
        )  # fmt: skip
        self.first = False
        return Markup(out)  # plotly's own HTML and script, not data from the warehouse


def _lift_chart(rows: pd.DataFrame) -> go.Figure:
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
    return fig


def _campaign(campaign_id: str, part: pd.DataFrame, charts: _Charts, index: int) -> dict:
    """What the template shows of one campaign: warnings, the summary, the chart, segments."""
    top = part[part.segment == "all"].set_index("metric")
    conv = top.loc["conversion"]
    underpowered = not math.isnan(conv.mde) and (
        math.isnan(conv.abs_lift) or abs(conv.abs_lift) < conv.mde
    )
    return {
        "id": campaign_id,
        "srm_p": conv.srm_p_value if bool(conv.srm_flag) else None,
        "power": {"n": int(conv.n_control + conv.n_treatment), "mde": conv.mde}
        if underpowered else None,
        "notes": sorted({n for n in part.note if n}),
        "summary": [
            {"label": label, "metric": metric, "field": field, "fmt": fmt,
             "value": top.loc[metric][field]}
            for label, metric, field, fmt in SUMMARY
        ],
        "chart": charts.html(
            _lift_chart(part[part.metric == "conversion"].sort_values("segment")),
            f"chart-campaign-{index}",  # campaign ids are data: never in an id or a script
        ),
        "segments": [
            {**r._asdict(), "metric_name": METRIC_NAMES.get(r.metric, r.metric)}
            for r in part.sort_values(["metric", "segment"]).itertuples()
        ],
    }  # fmt: skip


def incrementality_html(results: pd.DataFrame, as_of) -> str:
    charts = _Charts()
    campaigns = []
    if not results.empty:
        main = results[results.comparison == "vs_holdout"]
        groups = main.groupby("campaign_id", sort=True)
        campaigns = [_campaign(cid, part, charts, i) for i, (cid, part) in enumerate(groups)]
    return TEMPLATES.get_template("incrementality.html.j2").render(
        title="Incrementality", as_of=as_of, campaigns=campaigns
    )


CURVE_NAMES = {"all": "all customers", "global_control": "global control (never texted)",
               "rest": "eligible, not in the global control"}  # fmt: skip


def _curve_chart(curves: pd.DataFrame) -> go.Figure:
    """Each group's cumulative revenue per customer with its 95% band."""
    fig = go.Figure()
    for group, part in curves.groupby("group", sort=True):
        x = list(part.months_since_first_order)
        name = CURVE_NAMES.get(str(group), str(group))
        fig.add_trace(go.Scatter(x=x + x[::-1], y=list(part.ci_high) + list(part.ci_low)[::-1],
                                 fill="toself", opacity=0.2, line={"width": 0},
                                 hoverinfo="skip", showlegend=False))  # fmt: skip
        fig.add_trace(go.Scatter(x=x, y=part.cumulative_revenue_per_customer,
                                 mode="lines+markers", name=name))  # fmt: skip
    fig.update_layout(title="Cumulative revenue per customer by months since first order "
                      "(95% band)", xaxis_title="months since first order")  # fmt: skip
    return fig


def cohorts_html(cohorts: pd.DataFrame, curves: pd.DataFrame) -> str:
    template = TEMPLATES.get_template("cohorts.html.j2")
    if cohorts.empty:
        return template.render(title="LTV cohorts", charts=[], ltv=[])
    charts = _Charts()
    allc = cohorts[cohorts["group"] == "all"]
    grid = allc.pivot(index="cohort_month", columns="months_since_first_order",
                      values="active_share")  # fmt: skip
    heat = go.Figure(go.Heatmap(z=grid.to_numpy() * 100, x=list(grid.columns),
                                y=[str(i) for i in grid.index], colorscale="Blues",
                                colorbar={"title": "% active"}))  # fmt: skip
    heat.update_layout(title="Retention: % of the cohort ordering, by months since first order",
                       xaxis_title="months since first order", height=420)  # fmt: skip
    return template.render(
        title="LTV cohorts",
        charts=[charts.html(heat, "chart-retention"),
                charts.html(_curve_chart(curves), "chart-ltv")],
        ltv=[{**r._asdict(), "name": CURVE_NAMES.get(r.group, r.group)}
             for r in curves.sort_values(["group", "months_since_first_order"]).itertuples()],
    )  # fmt: skip


def _table(con, name: str, tables: set[str]) -> pd.DataFrame:
    return (
        con.execute(f"SELECT * FROM experiments.{name}").df()
        if name in tables
        else (pd.DataFrame())
    )


def overview_html(lines: list[dict], program: pd.DataFrame, guardrails: pd.DataFrame,
                  as_of, inbox: list[dict] | None = None) -> str:  # fmt: skip
    return TEMPLATES.get_template("overview.html.j2").render(
        title="SMS program overview", as_of=as_of, campaigns=lines,
        program=program.iloc[0] if len(program) else None, totals=program_totals(guardrails),
        inbox=inbox or [],
    )  # fmt: skip


INBOX_ROWS = 50


def inbox_rows(con) -> list[dict]:
    """The most recent replies waiting for a person (``sends.inbox``), numbers shown by their
    last four digits only: the page is read by people who need the words, not the number."""
    has_inbox = con.execute("""SELECT count(*) FROM information_schema.tables
        WHERE table_schema = 'sends' AND table_name = 'inbox'""").fetchone()[0]
    if not has_inbox:
        return []
    rows = con.execute(f"""SELECT strftime(received_at, '%Y-%m-%d %H:%M') AS received_at,
            '…' || right(phone_e164, 4) AS phone, text, why, last_campaign
        FROM sends.inbox ORDER BY received_at DESC, inbound_id LIMIT {INBOX_ROWS}""")
    columns = [d[0] for d in rows.description]
    return [dict(zip(columns, r, strict=True)) for r in rows.fetchall()]


def campaign_html(line: dict, results: pd.DataFrame, guardrails: pd.DataFrame,
                  history: pd.DataFrame) -> str:  # fmt: skip
    """One campaign's page (``line`` from ``pages.campaign_lines``)."""
    mine = results[(results.campaign_id == line["id"]) & (results.metric == "conversion")]
    held = mine[mine.comparison == "vs_holdout"]
    variants = mine[mine.comparison == "variant_vs_variant"].sort_values("segment")
    g = guardrails[guardrails.campaign_id == line["id"]] if len(guardrails) else guardrails
    charts = _Charts()
    chart = charts.html(lift_over_time(history, line["id"]), "chart-lift-over-time")
    uplift = line.get("uplift")
    if uplift is not None:
        uplift["chart"] = charts.html(qini_chart(line["qini_curves"], line["id"]), "chart-qini")
    page = {
        **line, "chart": chart, "srm": bool(line["row"].srm_flag),
        "guardrails": g.iloc[0] if len(g) else None,
        "segments": list(held[held.segment != "all"].sort_values("segment").itertuples()),
        "variants": list(variants.itertuples()),
        "winner": variant_winners(results).get(line["id"]),
    }  # fmt: skip
    return TEMPLATES.get_template("campaign.html.j2").render(
        title=str(line["id"]), c=page, winner_rule=WINNER_RULE
    )


def _add_uplift(con, lines: list[dict], results: pd.DataFrame, tables: set[str]) -> None:
    """For each uplift-targeted campaign: its Qini evaluation, the whole policy's measured
    revenue per unit against the holdout, and how many treated units it texted."""
    evaluation = _table(con, "uplift_evaluation", tables)
    curves = _table(con, "qini_curves", tables)
    for line in lines:
        line["uplift"] = None
        row = evaluation[evaluation.campaign_id == line["id"]] if len(evaluation) else evaluation
        if not len(row):
            continue
        revenue = results[
            (results.campaign_id == line["id"]) & (results.metric == "revenue")
            & (results.comparison == "vs_holdout") & (results.segment == "all")
        ]  # fmt: skip
        treated = dict(con.execute(
            """SELECT decision, count(*) FROM experiments.units
               WHERE campaign_id = ? AND arm = 'treatment' GROUP BY 1""", [line["id"]]
        ).fetchall())  # fmt: skip
        line["uplift"] = {
            "eval": row.iloc[0], "revenue": revenue.iloc[0] if len(revenue) else None,
            "texted": treated.get("sent", 0), "not_targeted": treated.get("not_targeted", 0),
        }  # fmt: skip
        line["qini_curves"] = curves


def write_reports(con, folder: Path, as_of,
                  planned_units: Mapping[str, float] | None = None) -> dict[str, Path]:  # fmt: skip
    """The overview (``index.html``), a page per campaign, ``incrementality.html`` and
    ``cohorts.html`` from the warehouse's experiments tables, each file replaced whole;
    ``planned_units`` per campaign set the verdicts' horizon (``experiments.pages``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tables = {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'experiments'"
    ).fetchall()}  # fmt: skip
    results = _table(con, "campaign_results", tables)
    guardrails = _table(con, "campaign_guardrails", tables)
    history = _table(con, "campaign_results_history", tables)
    lines = campaign_lines(results, guardrails, planned_units or {})
    clicks = _table(con, "click_through", tables)
    for line in lines:  # the campaign's rows, "all" first, then its variants
        mine = clicks[clicks.campaign_id == line["id"]] if len(clicks) else clicks
        line["clicks"] = sorted(mine.itertuples(), key=lambda r: (r.variant != "all", r.variant))
    _add_uplift(con, lines, results, tables)
    pages = {
        "overview": ("index.html", overview_html(
            lines, _table(con, "program_results", tables), guardrails, as_of, inbox_rows(con))),
        "incrementality": ("incrementality.html", incrementality_html(results, as_of)),
        "cohorts": ("cohorts.html", cohorts_html(_table(con, "ltv_cohorts", tables),
                                                 _table(con, "ltv_curves", tables))),
    }  # fmt: skip
    for line in lines:
        pages[f"campaign:{line['id']}"] = (
            line["page"],
            campaign_html(line, results, guardrails, history),
        )
    out = {}
    for name, (file_name, text) in pages.items():
        out[name] = folder / file_name
        tmp = out[name].with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out[name])
    return out
