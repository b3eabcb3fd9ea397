"""Closed loop over many seeded small worlds: customers get a campaign with a true +25%
relative effect and one with none; the send run assigns arms, the world responds, the
analysis estimates. The 95% intervals must cover the truth at about the nominal rate and
the null campaign must not be called significant more than about 5% of the time.

The +25% is the average of heterogeneous effects: +50% for customers lapsed when the decision
was made, none for active ones. The features build after the responses makes every buyer
active, so the treatment moves customers between segments; the per-segment intervals must
still cover each segment's own effect (segments measured after treatment would put the
lapsed who bought in the active segment, and fail).

The worlds are shops side by side in one warehouse, each with its own pair of campaigns (so
its own arms and estimates), loaded and built by the real pipeline before the decision and
after the responses."""

from dataclasses import replace
from datetime import timedelta

import duckdb
import pytest
from closed_loop import run_pipeline
from mini_warehouse import campaign, program, utc

from experiments.analysis import analyse
from send_jobs.decide import decide
from send_jobs.deliver import deliver
from send_jobs.gateways import OutboxGateway
from simulator.experiment_world import region_of, write_experiment_world
from simulator.response import respond

WORLDS = 200
CUSTOMERS = 1600  # per world
BASELINE = 0.20
EFFECT = 0.25
BY_STAGE = {"lapsed": 0.50, "active": 0.0}  # half the units each: +25% on average
DECIDED = utc("2026-06-10T15:00:00Z")
ANALYSED = DECIDED + timedelta(days=8)


def world_campaigns(prog, world: int) -> list:
    """A campaign with the effect over bronze and silver, one without over gold and
    platinum, both over this world's customers only."""
    mine = {"field": "region", "op": "eq", "value": region_of(world)}
    return [
        replace(campaign(prog, id=f"lifts_w{world:03d}", holdout_share=0.5,
                         audience=[mine, {"field": "loyalty_tier", "op": "in",
                                          "value": ["bronze", "silver"]}]),
                priority=1),
        replace(campaign(prog, id=f"null_w{world:03d}", holdout_share=0.5,
                         audience=[mine, {"field": "loyalty_tier", "op": "in",
                                          "value": ["gold", "platinum"]}]),
                priority=2),
    ]  # fmt: skip


def world_outcome(results, world: int) -> tuple[bool, bool, bool, dict[str, bool]]:
    rows = results[(results.comparison == "vs_holdout") & (results.metric == "conversion")]
    top = rows[rows.segment == "all"].set_index("campaign_id")
    lifts, null = top.loc[f"lifts_w{world:03d}"], top.loc[f"null_w{world:03d}"]
    covers_abs = lifts.abs_ci_low <= BASELINE * EFFECT <= lifts.abs_ci_high
    covers_rel = lifts.rel_ci_low <= EFFECT <= lifts.rel_ci_high
    segments = rows[rows.campaign_id == f"lifts_w{world:03d}"].set_index("segment")
    covers_stage = {
        stage: segments.loc[f"lifecycle_stage={stage}", "abs_ci_low"] <= BASELINE * effect
        <= segments.loc[f"lifecycle_stage={stage}", "abs_ci_high"]
        for stage, effect in BY_STAGE.items()
    }  # fmt: skip
    return covers_abs, covers_rel, null.p_value < 0.05, covers_stage


def closed_loop(root, worlds: int):
    """Every world decided, sent, responded to and analysed; the analysis results."""
    landing, warehouse = root / "landing", root / "warehouse.duckdb"
    write_experiment_world(landing, DECIDED, worlds=worlds, customers=CUSTOMERS)
    run_pipeline(landing, warehouse, DECIDED)
    with duckdb.connect(str(warehouse)) as con:
        cells = con.execute(
            """SELECT loyalty_tier, lifecycle_stage, count(*) FROM marts.dim_customers
               GROUP BY ALL"""
        ).fetchall()
    # the world as promised: four tiers by two stages, an eighth of the customers each
    assert sorted(cells) == [(tier, stage, worlds * CUSTOMERS // 8)
                             for tier in ("bronze", "gold", "platinum", "silver")
                             for stage in ("active", "lapsed")]  # fmt: skip
    prog = program(global_control_share=0.0)
    camps = [c for w in range(worlds) for c in world_campaigns(prog, w)]
    effects = {c.id: BY_STAGE if c.id.startswith("lifts") else 0.0 for c in camps}
    with duckdb.connect(str(warehouse)) as con:
        decide(con, prog, camps, DECIDED)
        deliver(con, prog, DECIDED, OutboxGateway(root / "outbox"))
        respond(con, landing, effects, baseline_rate=BASELINE, seed=1)
    run_pipeline(landing, warehouse, ANALYSED)
    with duckdb.connect(str(warehouse)) as con:
        moved = con.execute(
            """SELECT count(*) FROM sends.decisions AS d JOIN marts.dim_customers USING
               (customer_id) WHERE d.lifecycle_stage = 'lapsed'
               AND dim_customers.lifecycle_stage = 'active'"""
        ).fetchone()[0]
        return analyse(con, ANALYSED, {c.id: 0.5 for c in camps}), moved


@pytest.mark.slow
def test_intervals_cover_the_true_effect_at_the_nominal_rate(tmp_path):
    results, moved = closed_loop(tmp_path, WORLDS)
    assert moved > 1000  # lapsed at the decision, active in the marts the analysis sees
    outcomes = [world_outcome(results, w) for w in range(WORLDS)]
    abs_cover = sum(o[0] for o in outcomes) / WORLDS
    rel_cover = sum(o[1] for o in outcomes) / WORLDS
    false_positive = sum(o[2] for o in outcomes) / WORLDS
    stage_cover = {s: sum(o[3][s] for o in outcomes) / WORLDS for s in BY_STAGE}
    print(f"coverage over {WORLDS} worlds: absolute {abs_cover:.1%}, relative {rel_cover:.1%};"
          f" null campaign significant in {false_positive:.1%}; by lifecycle stage at the "
          f"decision: " + ", ".join(f"{s} {c:.1%}" for s, c in stage_cover.items()))  # fmt: skip
    # 95% nominal; with 200 worlds one standard error is 1.5 points
    assert 0.90 <= abs_cover <= 0.99
    assert 0.90 <= rel_cover <= 0.99
    assert false_positive <= 0.09
    for stage, cover in stage_cover.items():
        assert cover >= 0.93, stage
