"""Both reports opened in headless Chromium: the charts drew, no script errors, no network,
and the numbers shown match the warehouse tables; hostile names stay text."""

import re
import shutil
import subprocess
from datetime import timedelta
from html.parser import HTMLParser

import duckdb
import pytest
from mini_warehouse import campaign, program, utc

from experiments.analysis import analyse
from experiments.cohorts import build_cohorts
from experiments.program import measure_program
from experiments.reports import cohorts_html, incrementality_html, write_reports
from send_jobs.decide import decide
from send_jobs.deliver import deliver
from send_jobs.gateways import OutboxGateway
from simulator.response import respond
from simulator.send_world import build_send_world

DECIDED = utc("2026-06-10T15:00:00Z")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Cells(HTMLParser):
    """Every element's data-* attributes with its text."""

    def __init__(self) -> None:
        super().__init__()
        self.cells, self._open = [], None

    def handle_starttag(self, tag, attrs):
        data = {k: v for k, v in attrs if k.startswith("data-")}
        if tag == "td" and "data-field" in data or "data-group" in data:
            self._open = [data, ""]

    def handle_data(self, text):
        if self._open is not None:
            self._open[1] += text

    def handle_endtag(self, tag):
        if tag == "td" and self._open is not None:
            self.cells.append(tuple(self._open))
            self._open = None


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    con = duckdb.connect(str(root / "w.duckdb"))
    build_send_world(con, 2000)
    prog = program(global_control_share=0.05)
    promo = campaign(prog, id="promo", holdout_share=0.3)
    decide(con, prog, [promo], DECIDED)
    deliver(con, prog, DECIDED, OutboxGateway(root / "outbox"))
    respond(con, {"promo": 0.3}, baseline_rate=0.2, seed=3)
    analyse(con, DECIDED + timedelta(days=8), {"promo": 0.3})
    measure_program(con, DECIDED + timedelta(days=8), prog)
    build_cohorts(con, DECIDED + timedelta(days=8))
    paths = write_reports(con, root / "reports", "2026-06-18 00:00 UTC")
    yield con, paths


def dump_dom(path) -> str:
    assert CHROMIUM, "chromium is not installed: run `make chromium`"
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--virtual-time-budget=10000", "--dump-dom",
         path.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_incrementality_report_draws_and_matches_the_table(reports):
    con, paths = reports
    html = paths["incrementality"].read_text()
    assert not re.search(r"<script[^>]+src=", html)  # everything inline: opens offline
    dom = dump_dom(paths["incrementality"])
    assert not re.search(r"<html[^>]*data-script-errors", dom)
    drawn = int(re.search(r'data-charts-drawn="(\d+)"', dom).group(1))
    assert drawn >= 1 and 'class="main-svg"' in dom
    parser = Cells()
    parser.feed(dom)
    results = con.execute(
        "SELECT * FROM experiments.campaign_results WHERE comparison = 'vs_holdout'"
    ).df()
    checked = 0
    for attrs, text in parser.cells:
        if attrs.get("data-field") != "abs_lift" or "data-segment" not in attrs:
            continue
        row = results[(results.campaign_id == attrs["data-campaign"])
                      & (results.segment == attrs["data-segment"])
                      & (results.metric == attrs["data-metric"])].iloc[0]  # fmt: skip
        assert text == format(row.abs_lift, "+.4f")
        checked += 1
    assert checked == len(results)
    summary = {
        (a["data-metric"], a["data-field"]): t
        for a, t in parser.cells
        if "data-segment" not in a and "data-field" in a
    }
    top = results[(results.segment == "all")].set_index("metric")
    assert summary[("conversion", "n_treatment")] == format(top.loc["conversion"].n_treatment, ",")
    assert summary[("revenue", "incremental_revenue")] == format(
        top.loc["revenue"].incremental_revenue, ",.2f"
    )


def test_cohorts_report_draws_and_matches_the_table(reports):
    con, paths = reports
    dom = dump_dom(paths["cohorts"])
    assert not re.search(r"<html[^>]*data-script-errors", dom)
    assert int(re.search(r'data-charts-drawn="(\d+)"', dom).group(1)) >= 2
    curves = con.execute("SELECT * FROM experiments.ltv_curves").df()
    parser = Cells()
    parser.feed(dom)
    shown = {(a["data-group"], int(a["data-month"])): t for a, t in parser.cells}
    for (group, month), text in shown.items():
        row = curves[(curves["group"] == group) & (curves.months_since_first_order == month)]
        [value] = row.cumulative_revenue_per_customer
        assert text == format(value, ",.2f")
    assert len(shown) == len(curves)
    assert {g for g, _ in shown} == {"all", "global_control", "rest"}


def test_hostile_values_stay_text_and_empty_data_says_so():
    import pandas as pd

    evil = "<script>alert(1)</script>"
    row = dict(campaign_id=evil, comparison="vs_holdout", segment=f"variant={evil}",
               metric="conversion", n_control=0, n_treatment=3, control_mean=float("nan"),
               treatment_mean=0.1, abs_lift=float("nan"), abs_ci_low=float("nan"),
               abs_ci_high=float("nan"), rel_lift=float("nan"), rel_ci_low=float("nan"),
               rel_ci_high=float("nan"), p_value=float("nan"), p_value_adjusted=float("nan"),
               srm_p_value=float("nan"), srm_flag=False, mde=float("nan"),
               incremental_revenue=float("nan"), cost=0.0,
               cost_per_incremental_conversion=float("nan"),
               note="no units in the control arm: nothing to compare")  # fmt: skip
    rows = [row, {**row, "metric": "revenue"}, {**row, "segment": "all"},
            {**row, "segment": "all", "metric": "revenue"}]  # fmt: skip
    text = incrementality_html(pd.DataFrame(rows), "now")
    assert evil not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "no units in the control arm" in text
    assert "No campaign has customers" in incrementality_html(pd.DataFrame(), "now")
    assert "No orders yet" in cohorts_html(pd.DataFrame(), pd.DataFrame())
