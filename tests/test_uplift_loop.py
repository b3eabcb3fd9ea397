"""The uplift closed loop at a smaller size than its benchmark (``benchmarks/uplift_loop.py``):
ten worlds of customers whom a text changes in known ways, a learning period, then three
policies on copies of the same world; and the campaign page that shows the uplift policy."""

import json
import re

import duckdb
import numpy as np
import pandas as pd
import pytest
from conftest import built_once
from test_reports import dump_dom, numbers_match_their_tables

from benchmarks.uplift_loop import MEASURE_AT, run_loop
from experiments.reports import write_reports

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("uplift_loop")]


def build_loop(root) -> None:
    frame, table = run_loop(root, worlds=10, customers=1000, seed=1)
    frame.to_parquet(root / "per_world.parquet")
    (root / "summary.json").write_text(json.dumps(table))


@pytest.fixture(scope="session")
def loop(tmp_path_factory):
    """Built once per run: the suite's slow-first order interleaves modules, so a module
    fixture would be built again for each test."""
    root = built_once(tmp_path_factory, "uplift_loop", build_loop)
    table = json.loads((root / "summary.json").read_text())
    return root, pd.read_parquet(root / "per_world.parquet"), table


def test_the_uplift_policy_earns_more_per_message_with_fewer_messages(loop):
    _, frame, table = loop
    assert sorted(frame.policy.unique()) == ["rfm", "send_to_all", "uplift"]
    assert len(frame) == 30  # ten worlds, three policies
    gain, low, high = table["uplift_minus_send_to_all"]["per_1000_messages"]
    assert low > 0, table  # paired by world, the interval excludes zero
    wide = frame.pivot(index="world", columns="policy", values="messages")
    assert (wide["uplift"] < wide["send_to_all"]).all()
    stops = frame.pivot(index="world", columns="policy", values="opt_outs").sum()
    assert stops["uplift"] < stops["send_to_all"]  # fewer sleeping dogs woken
    # the models rank better than random on units they had not seen (a world's few hundred
    # evaluated units give wide intervals; over the ten worlds the mean's excludes zero)
    assert table["uplift_qini_coefficient"]["per_world"][1] > 0
    assert np.isnan(frame[frame.policy == "send_to_all"].qini_coefficient).all()


def test_the_measured_margin_adds_up_from_the_units(loop):
    """Each row's incremental margin, recomputed from experiments.units and the ledger."""
    root, frame, _ = loop
    con = duckdb.connect(str(root / "uplift" / "warehouse.duckdb"), read_only=True)
    row = frame[(frame.policy == "uplift") & (frame.world == 0)].iloc[0]
    units = con.execute(
        "SELECT arm, decision, revenue FROM experiments.units WHERE campaign_id = 'policy_w000'"
    ).df()
    cost = con.execute(
        "SELECT sum(estimated_cost) FROM sends.messages WHERE campaign_id = 'policy_w000'"
    ).fetchone()[0]
    treated, held = units[units.arm == "treatment"], units[units.arm == "holdout"]
    expected = (treated.revenue.mean() - held.revenue.mean()) * 0.40 * len(treated) - cost
    assert row.incremental_margin == pytest.approx(expected)
    assert row.messages == (treated.decision == "sent").sum()
    assert set(treated.decision) == {"sent", "not_targeted"}
    con.close()


def test_the_campaign_page_shows_the_qini_curve_and_the_policy(loop, tmp_path):
    root, _, _ = loop
    con = duckdb.connect(str(root / "uplift" / "warehouse.duckdb"), read_only=True)
    paths = write_reports(con, tmp_path, f"{MEASURE_AT:%Y-%m-%d %H:%M} UTC")
    dom = dump_dom(paths["campaign:policy_w000"])
    assert not re.search(r"<html[^>]*data-script-errors", dom)
    assert 'id="chart-qini"' in dom and "Qini curve" in dom
    assert "data-qini" in dom and "data-uplift-policy" in dom
    assert numbers_match_their_tables(con, dom) >= 4
    # a page of a campaign without uplift targeting has no such section
    plain = dump_dom(paths["campaign:learn_w000"]) if "campaign:learn_w000" in paths else ""
    assert "chart-qini" not in plain
    con.close()
