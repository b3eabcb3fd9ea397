"""Holdout analysis on a warehouse whose outcomes are drawn with a known effect: units,
arms and outcomes recounted independently, estimates, segments and degenerate cases."""

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from mini_warehouse import INSERT_ORDER, MiniWarehouse, campaign, program, utc

from experiments.analysis import analyse
from experiments.stats import lift
from send_jobs.decide import decide

DECIDED = "2026-06-10T15:00:00Z"
# one worker builds the module's shared fixture once
pytestmark = pytest.mark.xdist_group("analysis")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = MiniWarehouse(tmp_path_factory.mktemp("analysis") / "w.duckdb")
    w.con.begin()  # one commit for the 4,000 customers, not one each
    for i in range(4000):
        w.customer(f"C{i:05d}", phone=f"+1212{i:07d}",
                   loyalty_tier="gold" if i % 4 == 0 else "bronze")  # fmt: skip
    w.con.commit()
    at = utc(DECIDED).replace(tzinfo=None)
    rng = np.random.default_rng(5)
    # pre-period spend, unrelated to the arm, in the warehouse when the decision is made
    orders = [(f"P{n}", f"C{n:05d}", at - timedelta(days=10), 25.0, "completed")
              for n in range(4000) if rng.random() < 0.5]  # fmt: skip
    w.con.executemany(INSERT_ORDER, orders)
    prog = program(global_control_share=0.10)
    promo = campaign(prog, holdout_share=0.3)
    run = decide(w.con, prog, [promo], utc(DECIDED))
    arms = dict(
        w.con.execute(
            "SELECT customer_id, arm FROM sends.decisions WHERE run_id = ?", [run.run_id]
        ).fetchall()
    )
    # after the decision the nightly moves everyone to another segment, and an order placed
    # before the decision arrives late: neither may change what the analysis reads
    w.con.execute("UPDATE marts.dim_customers SET lifecycle_stage = 'lapsed', "
                  "loyalty_tier = 'platinum', rfm_segment = 'lost'")  # fmt: skip
    spent = {cid for _, cid, *_ in orders}
    late = next(c for c in sorted(arms) if c not in spent)
    # outcomes with a known effect: treated convert at 30%, the others at 20%
    after = [("LATEPRE", late, at - timedelta(days=5), 10.0, "completed")]
    for n, (cid, arm) in enumerate(sorted(arms.items())):
        if rng.random() < (0.30 if arm == "treatment" else 0.20):
            after.append((f"O{n}", cid, at + timedelta(days=2), 40.0, "completed"))
    after.append(("LATE", "C00000", at + timedelta(days=9), 99.0, "completed"))  # outside
    after.append(("X", "C00001", at + timedelta(days=1), 99.0, "cancelled"))  # cancelled
    w.con.executemany(INSERT_ORDER, after)
    orders += after
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
    assert set(units.index[units.pre_period_revenue > 0]) == pre  # not the late LATEPRE
    decided = w.con.execute(
        "SELECT customer_id, lifecycle_stage, loyalty_tier, rfm_segment FROM sends.decisions"
    ).df().set_index("customer_id")  # fmt: skip
    for column in ("lifecycle_stage", "loyalty_tier", "rfm_segment"):
        assert units[column].to_dict() == decided.loc[units.index, column].to_dict()
    assert set(units.loyalty_tier) == {"gold", "bronze"}  # as decided, not the later platinum


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
            "rfm_segment=loyal", "variant=v1"} <= set(conv.segment)  # fmt: skip
    assert not any("platinum" in s or "lapsed" in s for s in conv.segment)
    for _, group in conv.groupby("comparison"):
        assert (group.p_value_adjusted >= group.p_value - 1e-12).all()


def _decided_world(tmp_path, *, customers: int, holdout_share: float) -> MiniWarehouse:
    """One campaign decided over ``customers`` customers; no orders yet."""
    w = MiniWarehouse(tmp_path / "w.duckdb")
    for i in range(customers):
        w.customer(f"C{i}", phone=f"+1212555{i:04d}")
    prog = program(global_control_share=0.0)
    decide(w.con, prog, [campaign(prog, holdout_share=holdout_share)], utc(DECIDED))
    return w


def test_an_arm_without_units_is_reported_not_raised(tmp_path):
    w = _decided_world(tmp_path, customers=30, holdout_share=0.0)
    results = analyse(w.con, utc("2026-06-20T00:00:00Z"), {"promo": 0.0})
    row = results[(results.segment == "all") & (results.metric == "conversion")].iloc[0]
    assert row.n_control == 0 and row.n_treatment == 30
    assert row.note == "keeps no holdout by design (holdout_share 0): not measured"
    assert pd.isna(row.abs_lift)


def test_ltv_cohorts_and_curves_by_assignment(world):
    from experiments.cohorts import build_cohorts
    from experiments.program import measure_program

    w, arms, _, _ = world
    as_of = utc("2026-06-20T00:00:00Z")
    measure_program(w.con, as_of, program(global_control_share=0.10))
    # the program's global control is the send path's: every customer the campaign held in
    # it, and no one else (every customer was a candidate here)
    control = {
        r[0]
        for r in w.con.execute(
            "SELECT customer_id FROM experiments.program_units WHERE global_control"
        ).fetchall()
    }
    assert control == {c for c, arm in arms.items() if arm == "global_control"}
    assert build_cohorts(w.con, as_of) > 0
    sizes = dict(
        w.con.execute(
            'SELECT "group", max(cohort_size) FROM experiments.ltv_cohorts GROUP BY 1'
        ).fetchall()
    )
    assert set(sizes) == {"all", "global_control", "rest"}
    assert sizes["all"] >= sizes["rest"] > sizes["global_control"] > 0
    curves = w.con.execute("SELECT * FROM experiments.ltv_curves").df()
    assert set(curves.group) == {"all", "global_control", "rest"}
    for _, curve in curves.groupby("group"):
        assert curve.cumulative_revenue_per_customer.is_monotonic_increasing
        assert (curve.ci_low <= curve.cumulative_revenue_per_customer).all()


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
    w.con.execute("INSERT INTO marts.fct_orders BY NAME SELECT customer_id, 'O' || customer_id "
                  "AS order_id, TIMESTAMP '2026-06-12 10:00:00' AS ordered_at, 30.0 AS "
                  "net_revenue, 'completed' AS order_status FROM marts.dim_customers "
                  "WHERE customer_id < 'C050'")  # fmt: skip
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
    assert mat.metadata["overview_report"].value == str(tmp_path / "reports" / "index.html")
    assert mat.metadata["units"].value == 200
    assert mat.metadata["campaigns"].value == 1
    assert mat.metadata["sample_ratio_mismatch"].value == []
    assert mat.metadata["guardrail_flags"].value == []  # one campaign: no norm to be worse than
    assert mat.metadata["variant_winners"].value == {}  # one variant
    # the asset measures with the repository's program (5% global control)
    assert isinstance(mat.metadata["program_incremental_revenue"].value, float)


def test_each_analysis_date_is_kept_and_a_rerun_replaces_its_own(tmp_path):
    w = _decided_world(tmp_path, customers=60, holdout_share=0.5)
    days = [utc(f"2026-06-{d}T00:00:00Z") for d in (18, 19, 18)]
    sizes = [len(analyse(w.con, day, {"promo": 0.5})) for day in days]
    kept = dict(w.con.execute("SELECT as_of, count(*) FROM experiments.campaign_results_history "
                              "GROUP BY 1").fetchall())  # fmt: skip
    assert {str(k.date()): v for k, v in kept.items()} == {"2026-06-18": sizes[2],
                                                            "2026-06-19": sizes[1]}  # fmt: skip
    # a history written before a column existed gets it, NULL on the older dates
    w.con.execute("ALTER TABLE experiments.campaign_results_history DROP seq_abs_ci_low")
    analyse(w.con, utc("2026-06-20T00:00:00Z"), {"promo": 0.5})
    filled = dict(w.con.execute(
        "SELECT as_of, count(seq_abs_ci_low) FROM experiments.campaign_results_history "
        "WHERE segment = 'all' GROUP BY 1").fetchall())  # fmt: skip
    assert {str(k.date()): v > 0 for k, v in filled.items()} == {
        "2026-06-18": False, "2026-06-19": False, "2026-06-20": True}  # fmt: skip


def _variant_units(n_per_variant: int, rates: dict[str, float], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for variant, rate in rates.items():
        converted = (rng.random(n_per_variant) < rate).astype(int)
        frames.append(pd.DataFrame({
            "campaign_id": "promo", "category": "marketing", "arm": "treatment",
            "variant": variant, "lifecycle_stage": "active", "loyalty_tier": "gold",
            "rfm_segment": "loyal", "conversion": converted, "campaign_outcome": converted,
            "orders": converted, "revenue": converted * 40.0,
            "pre_period_revenue": rng.gamma(2.0, 10.0, n_per_variant), "estimated_cost": 0.01,
        }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def test_variants_head_to_head_and_the_winner_rule():
    from experiments.analysis import campaign_results, variant_winners

    rates = {"v1": 0.10, "v2": 0.10, "v3": 0.20}
    units = _variant_units(4000, rates, seed=11)
    results = campaign_results(units, {"promo": 0.1}, utc("2026-06-20T00:00:00Z"))
    h2h = results[(results.comparison == "variant_vs_variant")
                  & (results.metric == "conversion")].set_index("segment")  # fmt: skip
    assert set(h2h.index) == {"variant=v2 vs variant=v1", "variant=v3 vs variant=v1",
                              "variant=v3 vs variant=v2"}  # fmt: skip
    row = h2h.loc["variant=v3 vs variant=v1"]
    direct = lift(units[units.variant == "v1"].conversion, units[units.variant == "v3"].conversion,
                  metric="proportion")  # fmt: skip
    assert row.rel_lift == pytest.approx(direct.rel_lift)
    assert row.seq_rel_ci_low == pytest.approx(direct.seq_rel_ci_low)
    assert variant_winners(results) == {"promo": "v3"}
    # the same difference on 150 units per variant: the sequential interval is too wide yet
    early = campaign_results(_variant_units(150, rates, seed=11), {"promo": 0.1},
                             utc("2026-06-20T00:00:00Z"))  # fmt: skip
    assert variant_winners(early) == {"promo": None}
    # two equal best variants: neither beats the other, so no winner
    tied = campaign_results(_variant_units(4000, {"v1": 0.1, "v2": 0.2, "v3": 0.2}, seed=3),
                            {"promo": 0.1}, utc("2026-06-20T00:00:00Z"))  # fmt: skip
    assert variant_winners(tied) == {"promo": None}


def test_the_cli_table_shows_the_always_valid_interval_beside_the_fixed_one():
    from rich.console import Console

    from experiments.analysis import campaign_results
    from orchestration.cli.experiments import _results_table

    units = _variant_units(3000, {"v1": 0.10}, seed=4)
    units.loc[units.index % 2 == 0, ["arm", "variant"]] = ["holdout", None]
    results = campaign_results(units, {"promo": 0.5}, utc("2026-06-20T00:00:00Z"))
    conv = results[(results.comparison == "vs_holdout") & (results.segment == "all")
                   & (results.metric == "conversion")].iloc[0]  # fmt: skip
    console = Console(record=True, width=250)
    console.print(_results_table(results, utc("2026-06-20T00:00:00Z"), len(units), 1.0))
    text = console.export_text()
    assert "always-valid CI (daily looks)" in text
    assert f"[{conv.seq_abs_ci_low:+.1%}, {conv.seq_abs_ci_high:+.1%}]" in text
    assert conv.seq_abs_ci_high - conv.seq_abs_ci_low > conv.abs_ci_high - conv.abs_ci_low


def test_a_campaign_without_a_holdout_by_design_says_so():
    """A service message holds nobody out: its rows say it is not measured by design, not
    that its control arm came out empty; a campaign that holds out but has no holdout units
    yet still says that."""
    from experiments.analysis import NO_HOLDOUT_BY_DESIGN, campaign_results

    service = _variant_units(200, {"v1": 0.1}, seed=5).assign(campaign_id="reminder")
    early = _variant_units(200, {"v1": 0.1}, seed=6)
    results = campaign_results(pd.concat([service, early]), {"reminder": 0.0, "promo": 0.1},
                               utc("2026-06-20T00:00:00Z"))  # fmt: skip
    notes = results[results.comparison == "vs_holdout"].groupby("campaign_id")["note"].unique()
    assert list(notes["reminder"]) == [NO_HOLDOUT_BY_DESIGN]
    assert list(notes["promo"]) == ["no units in the control arm: nothing to compare"]
