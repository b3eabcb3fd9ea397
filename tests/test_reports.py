"""Both reports opened in headless Chromium: the charts drew, no script errors, no network,
and the numbers shown match the warehouse tables; hostile names stay text."""

import json
import re
import shutil
import subprocess
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest
from closed_loop import run_pipeline
from conftest import built_once
from mini_warehouse import campaign, program, utc

from experiments.analysis import analyse
from experiments.clicks import measure_clicks
from experiments.cohorts import build_cohorts
from experiments.guardrails import measure_guardrails
from experiments.program import measure_program
from experiments.reports import cohorts_html, incrementality_html, write_reports
from send_jobs import receipts
from send_jobs.decide import decide
from send_jobs.deliver import deliver
from send_jobs.gateways import OutboxGateway
from send_jobs.link_service import make_server
from send_jobs.receiver import serving
from simulator.clicks import tap_links
from simulator.experiment_world import write_experiment_world
from simulator.response import respond

DECIDED = utc("2026-06-10T15:00:00Z")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "data" / "screenshots"  # git-ignored
# one worker builds the module's shared world once
pytestmark = pytest.mark.xdist_group("reports")


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

    @classmethod
    def data_cells(cls, dom: str) -> list[tuple[dict, str]]:
        """The cells that name the warehouse table they show."""
        parser = cls()
        parser.feed(dom)
        return [(a, t) for a, t in parser.cells if "data-table" in a]


def build_reports(root: Path) -> None:
    """Two campaigns, one with a true +50% effect and one with none, analysed on two days;
    the pages in ``root/reports``, their paths in ``root/paths.json``."""
    landing, warehouse = root / "landing", root / "w.duckdb"
    write_experiment_world(landing, DECIDED, customers=4000)
    run_pipeline(landing, warehouse, DECIDED)
    prog = program(global_control_share=0.05)
    promo = campaign(
        prog,
        id="promo",
        holdout_share=0.3,
        audience=[{"field": "loyalty_tier", "op": "in", "value": ["bronze", "silver"]}],
    )
    quiet = campaign(
        prog,
        id="quiet",
        holdout_share=0.3,
        audience=[{"field": "loyalty_tier", "op": "in", "value": ["gold", "platinum"]}],
    )
    with duckdb.connect(str(warehouse)) as con:
        decide(con, prog, [promo, quiet], DECIDED)
        deliver(con, prog, DECIDED, OutboxGateway(root / "outbox"), links=root / "links")
        respond(con, landing, {"promo": 0.5, "quiet": 0.0}, baseline_rate=0.2, seed=4)
        tap_through_the_link_service(con, root, prog.link_base, {"promo": 0.1, "quiet": 0.04})
        receipts.ingest(con, landing / "gateway")
    run_pipeline(landing, warehouse, DECIDED + timedelta(days=9))
    with duckdb.connect(str(warehouse)) as con:
        for day in (8, 9):
            analyse(con, DECIDED + timedelta(days=day), {"promo": 0.3, "quiet": 0.3})
        measure_guardrails(con, DECIDED + timedelta(days=9))
        measure_clicks(con, DECIDED + timedelta(days=9))
        measure_program(con, DECIDED + timedelta(days=9), prog)
        build_cohorts(con, DECIDED + timedelta(days=9))
        # quiet's test is planned at 1,000 units (it has about 1,900): read at its horizon
        paths = write_reports(con, root / "reports", "2026-06-19 00:00 UTC", {"quiet": 1000})
    (root / "paths.json").write_text(json.dumps({k: str(v) for k, v in paths.items()}))


def tap_through_the_link_service(con, root: Path, link_base: str, ctr: dict) -> None:
    """The recipients tap their links (the simulator) through the link service, an hour
    after the decision."""
    server = make_server(0, root / "links", root / "landing" / "gateway", link_base,
                         clock=lambda: DECIDED + timedelta(hours=1))  # fmt: skip
    with serving(server):
        assert tap_links(con, server.server_address[1], link_base, ctr, seed=5).unexpected == []


@pytest.fixture(scope="session")
def reports(tmp_path_factory):
    """The shared world's warehouse (read only) and its pages, built once per run: the
    suite's slow-first ordering interleaves modules, so a module fixture would be rebuilt."""
    root = built_once(tmp_path_factory, "reports", build_reports)
    paths = {k: Path(v) for k, v in json.loads((root / "paths.json").read_text()).items()}
    con = duckdb.connect(str(root / "w.duckdb"), read_only=True)
    yield con, paths
    con.close()


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
        (a["data-campaign"], a["data-metric"], a["data-field"]): t
        for a, t in parser.cells
        if "data-segment" not in a and "data-field" in a and "data-table" not in a
    }
    for campaign_id in ("promo", "quiet"):
        top = results[(results.segment == "all") & (results.campaign_id == campaign_id)]
        top = top.set_index("metric")
        assert summary[(campaign_id, "conversion", "n_treatment")] == format(
            top.loc["conversion"].n_treatment, ","
        )
        assert summary[(campaign_id, "revenue", "incremental_revenue")] == format(
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


def screenshot(path, name: str) -> Path:
    """A PNG of the page as headless Chromium draws it, kept under data/screenshots."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    out = SCREENSHOTS / name
    out.unlink(missing_ok=True)
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--disable-background-networking", "--virtual-time-budget=10000",
         "--window-size=1280,1600", f"--screenshot={out}", path.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and out.stat().st_size > 10_000, done.stderr[-2000:]
    return out


def numbers_match_their_tables(con, dom: str) -> int:
    """Every cell naming a warehouse table shows that table's value in its format."""
    checked = 0
    for attrs, text in Cells.data_cells(dom):
        table = con.execute(f"SELECT * FROM experiments.{attrs['data-table']}").df()
        keys = {"campaign": "campaign_id", "comparison": "comparison", "segment": "segment",
                "metric": "metric", "variant": "variant"}  # fmt: skip
        for attr, column in keys.items():
            if f"data-{attr}" in attrs:
                table = table[table[column] == attrs[f"data-{attr}"]]
        [value] = table[attrs["data-field"]]
        shown = "n/a" if value != value else format(value, attrs["data-format"])
        assert text == shown, (attrs, text, shown)
        checked += 1
    return checked


def test_overview_gives_a_verdict_per_campaign_and_matches_the_tables(reports):
    con, paths = reports
    dom = dump_dom(paths["overview"])
    assert not re.search(r"<html[^>]*data-script-errors", dom)
    verdicts = dict(re.findall(r'<tr data-line="([^"]+)">.*?data-verdict="([^"]+)"', dom, re.S))
    # promo: below the default 5,000 units, read on the always-valid interval; quiet: at its
    # planned 1,000, on the fixed-horizon one, which spans zero
    assert verdicts == {"promo": "works", "quiet": "no_effect"}
    quiet = con.execute(
        """SELECT rel_ci_low, rel_ci_high FROM experiments.campaign_results WHERE campaign_id =
           'quiet' AND comparison = 'vs_holdout' AND segment = 'all' AND metric = 'conversion'"""
    ).fetchone()
    assert quiet[0] < 0 < quiet[1]  # the world's null effect, estimated: no_effect's premise
    program_row = con.execute("SELECT * FROM experiments.program_results").df().iloc[0]
    assert program_row.n_global_control > 0
    assert numbers_match_their_tables(con, dom) == 8 + 2 * 6  # program, 6 per campaign
    assert 'href="campaign-1.html"' in dom and 'href="campaign-2.html"' in dom
    screenshot(paths["overview"], "overview.png")


def test_a_campaign_page_draws_its_lift_over_time_and_matches_the_tables(reports):
    con, paths = reports
    page = paths["campaign:promo"]
    assert page.name == "campaign-1.html"
    dom = dump_dom(page)
    assert not re.search(r"<html[^>]*data-script-errors", dom)
    assert int(re.search(r'data-charts-drawn="(\d+)"', dom).group(1)) >= 1
    history = con.execute("SELECT DISTINCT as_of FROM experiments.campaign_results_history").df()
    assert len(history) == 2  # the chart's two analysis dates
    assert 'data-verdict="works"' in dom
    assert numbers_match_their_tables(con, dom) >= 5 + 3 * 4 + 4  # guardrails, segments, clicks
    clicks = re.search(r"<table data-clicks[^>]*>(.*?)</table>", dom, re.S).group(1)
    assert 'data-variant="all"' in clicks and "<td>all</td>" in clicks
    screenshot(page, "campaign-promo.png")


@pytest.mark.parametrize(
    ("fixed", "always_valid", "units", "expected"),
    [((0.01, 0.05), (0.01, 0.05), 1800, "works"),  # before the horizon: always-valid
     ((0.01, 0.05), (-0.01, 0.07), 1800, "too_early"),
     ((-0.05, -0.01), (-0.07, -0.001), 1800, "harmful"),
     ((0.01, 0.05), (-0.01, 0.07), 5200, "works"),  # at the horizon: fixed-horizon
     ((-0.01, 0.03), (-0.03, 0.05), 5200, "no_effect"),
     ((-0.05, -0.01), (-0.07, 0.01), 5200, "harmful"),
     ((float("nan"),) * 2, (float("nan"),) * 2, 0, "no_holdout")],
)  # fmt: skip
def test_verdicts_read_the_always_valid_interval_until_the_planned_size(
    fixed, always_valid, units, expected
):
    from types import SimpleNamespace

    from experiments.pages import verdict

    row = SimpleNamespace(abs_ci_low=fixed[0], abs_ci_high=fixed[1],
                          seq_abs_ci_low=always_valid[0], seq_abs_ci_high=always_valid[1],
                          n_control=units // 2, n_treatment=units - units // 2)  # fmt: skip
    assert verdict(row, planned_units=5000) == expected
