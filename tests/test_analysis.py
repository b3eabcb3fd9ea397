"""Holdout analysis on a warehouse whose outcomes are drawn with a known effect: units,
arms and outcomes recounted independently, estimates, segments and degenerate cases."""

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from mini_warehouse import MiniWarehouse, campaign, program, utc

from experiments.analysis import analyse
from experiments.stats import lift
from send_jobs.decide import decide

DECIDED = "2026-06-10T15:00:00Z"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = MiniWarehouse(tmp_path_factory.mktemp("analysis") / "w.duckdb")
    w.con.begin()  # one commit for the 4,000 customers, not one each
    for i in range(4000):
        w.customer(f"C{i:05d}", phone=f"+1212{i:07d}",
                   loyalty_tier="gold" if i % 4 == 0 else "bronze")  # fmt: skip
    w.con.commit()
    prog = program(global_control_share=0.10)
    promo = campaign(prog, holdout_share=0.3)
    run = decide(w.con, prog, [promo], utc(DECIDED))
    arms = dict(
        w.con.execute(
            "SELECT customer_id, arm FROM sends.decisions WHERE run_id = ?", [run.run_id]
        ).fetchall()
    )
    # outcomes with a known effect: treated convert at 30%, the others at 20%
    rng = np.random.default_rng(5)
    at = utc(DECIDED).replace(tzinfo=None)
    orders = []
    for n, (cid, arm) in enumerate(sorted(arms.items())):
        if rng.random() < (0.30 if arm == "treatment" else 0.20):
            orders.append((f"O{n}", cid, at + timedelta(days=2), 40.0, "completed"))
        if rng.random() < 0.5:  # pre-period spend, unrelated to the arm
            orders.append((f"P{n}", cid, at - timedelta(days=10), 25.0, "completed"))
    orders.append(("LATE", "C00000", at + timedelta(days=9), 99.0, "completed"))  # outside
    orders.append(("X", "C00001", at + timedelta(days=1), 99.0, "cancelled"))  # cancelled
    w.con.execute(
        "CREATE TABLE marts.fct_orders (order_id VARCHAR, customer_id VARCHAR, "
        "ordered_at TIMESTAMP, net_revenue DOUBLE, order_status VARCHAR)"
    )
    w.con.executemany("INSERT INTO marts.fct_orders VALUES (?, ?, ?, ?, ?)", orders)
    w.con.execute(
        "CREATE TABLE marts.fct_order_lines (customer_id VARCHAR, product_id VARCHAR, "
        "ordered_at TIMESTAMP, is_cancelled INTEGER)"
    )
    results = analyse(w.con, utc("2026-06-20T00:00:00Z"), {"promo": 0.3})
    return w, arms, orders, results


def test_units_and_outcomes_recount(world):
    w, arms, orders, _ = world
    units = w.con.execute("SELECT * FROM experiments.units").df().set_index("customer_id")
    assert len(units) == len(arms)
    assert units.arm.to_dict() == arms
    at = utc(DECIDED).replace(tzinfo=None)
    inside = {
        cid
        for _, cid, t, _, status in orders
        if status != "cancelled" and at < t <= at + timedelta(days=7)
    }
    assert set(units.index[units.conversion == 1]) == inside
    assert (units.loc[list(inside), "revenue"] == 40.0).all()
    pre = {cid for oid, cid, *_ in orders if oid.startswith("P")}
    assert set(units.index[units.pre_period_revenue > 0]) == pre


def test_estimates_match_the_units_and_cover_the_true_effect(world):
    w, _, _, results = world
    units = w.con.execute("SELECT * FROM experiments.units").df()
    row = results[
        (results.comparison == "vs_holdout")
        & (results.segment == "all")
        & (results.metric == "conversion")
    ].iloc[0]
    c = units[units.arm == "holdout"].conversion.to_numpy(float)
    t = units[units.arm == "treatment"].conversion.to_numpy(float)
    direct = lift(c, t, metric="proportion")
    assert (row.n_control, row.n_treatment) == (len(c), len(t))
    assert row.abs_lift == pytest.approx(direct.abs_lift)
    assert row.abs_ci_low < 0.10 < row.abs_ci_high  # the true effect: +10 points
    assert row.p_value < 0.001
    assert not row.srm_flag and row.srm_p_value > 0.001
    revenue = results[(results.segment == "all") & (results.metric == "revenue")
                      & (results.comparison == "vs_holdout")].iloc[0]  # fmt: skip
    assert revenue.incremental_revenue == pytest.approx(revenue.abs_lift * revenue.n_treatment)
    assert revenue.cuped_rel_lift == revenue.cuped_rel_lift  # computed (not NaN)
    assert row.cost_per_incremental_conversion > 0
    stored = w.con.execute("SELECT count(*) FROM experiments.campaign_results").fetchone()[0]
    assert stored == len(results)


def test_segments_and_comparisons_with_adjusted_p_values(world):
    _, _, _, results = world
    conv = results[results.metric == "conversion"]
    assert set(conv.comparison) == {"vs_holdout", "vs_global_control"}
    assert {"all", "loyalty_tier=gold", "loyalty_tier=bronze", "lifecycle_stage=active",
            "variant=v1"} <= set(conv.segment)  # fmt: skip
    for _, group in conv.groupby("comparison"):
        assert (group.p_value_adjusted >= group.p_value - 1e-12).all()


def test_an_arm_without_units_is_reported_not_raised(tmp_path):
    w = MiniWarehouse(tmp_path / "w.duckdb")
    for i in range(30):
        w.customer(f"C{i}", phone=f"+1212555{i:04d}")
    prog = program(global_control_share=0.0)
    decide(w.con, prog, [campaign(prog, holdout_share=0.0)], utc(DECIDED))
    w.con.execute("CREATE TABLE marts.fct_orders (order_id VARCHAR, customer_id VARCHAR, "
                  "ordered_at TIMESTAMP, net_revenue DOUBLE, order_status VARCHAR)")  # fmt: skip
    w.con.execute("CREATE TABLE marts.fct_order_lines (customer_id VARCHAR, product_id VARCHAR, "
                  "ordered_at TIMESTAMP, is_cancelled INTEGER)")  # fmt: skip
    results = analyse(w.con, utc("2026-06-20T00:00:00Z"), {"promo": 0.0})
    row = results[(results.segment == "all") & (results.metric == "conversion")].iloc[0]
    assert row.n_control == 0 and row.n_treatment == 30
    assert "no units in the control arm" in row.note
    assert pd.isna(row.abs_lift)


def test_ltv_cohorts_table_has_the_three_groups(world):
    from experiments.analysis import build_cohorts

    w, arms, _, _ = world
    assert build_cohorts(w.con) > 0
    groups = dict(
        w.con.execute(
            'SELECT "group", max(cohort_size) FROM experiments.ltv_cohorts GROUP BY 1'
        ).fetchall()
    )
    assert set(groups) == {"all", "exposed", "global_control"}
    assert groups["all"] >= groups["exposed"] > groups["global_control"] > 0


def test_dagster_asset_materialises_the_analysis(tmp_path):
    import dagster as dg
    from dagster_duckdb import DuckDBResource

    from orchestration.defs.common import SettingsResource
    from orchestration.defs.experiments import campaign_results
    from warehouse.settings import Settings

    path = tmp_path / "w.duckdb"
    w = MiniWarehouse(path)
    for i in range(200):
        w.customer(f"C{i:03d}", phone=f"+1212555{i:04d}")
    prog = program(global_control_share=0.0)
    decide(w.con, prog, [campaign(prog, id="welcome", holdout_share=0.1)], utc(DECIDED))
    w.con.execute("CREATE TABLE marts.fct_orders AS SELECT customer_id, 'O' || customer_id "
                  "AS order_id, TIMESTAMP '2026-06-12 10:00:00' AS ordered_at, 30.0 AS "
                  "net_revenue, 'completed' AS order_status FROM marts.dim_customers "
                  "WHERE customer_id < 'C050'")  # fmt: skip
    w.con.execute("CREATE TABLE marts.fct_order_lines (customer_id VARCHAR, product_id VARCHAR, "
                  "ordered_at TIMESTAMP, is_cancelled INTEGER)")  # fmt: skip
    w.con.close()
    result = dg.materialize(
        [campaign_results],
        partition_key="2026-06-19",
        resources={
            "warehouse": DuckDBResource(database=str(path)),
            "settings": SettingsResource.of(
                Settings.from_env({"RETENTEXT_REPORTS": str(tmp_path / "reports")})
            ),
        },
    )
    assert result.success
    [mat] = result.asset_materializations_for_node("experiments__campaign_results")
    assert mat.metadata["incrementality_report"].value == str(
        tmp_path / "reports" / "incrementality.html"
    )
    assert (tmp_path / "reports" / "cohorts.html").exists()
    assert mat.metadata["units"].value == 200
    assert mat.metadata["campaigns"].value == 1
    assert mat.metadata["sample_ratio_mismatch"].value == []
