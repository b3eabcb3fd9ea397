"""Closed loop over many seeded small worlds: customers get a campaign with a true +25%
relative effect and one with none; the send run assigns arms, the world responds, the
analysis estimates. The 95% intervals must cover the truth at about the nominal rate and
the null campaign must not be called significant more than about 5% of the time.

The +25% is the average of heterogeneous effects: +50% for customers lapsed when the decision
was made, none for active ones. The world's nightly then makes every buyer active, so the
treatment moves customers between segments; the per-segment intervals must still cover each
segment's own effect (segments measured after treatment would put the lapsed who bought in
the active segment, and fail)."""

from dataclasses import replace
from datetime import timedelta

import duckdb
import pytest
from mini_warehouse import campaign, program, utc

from experiments.analysis import analyse
from send_jobs.decide import decide
from send_jobs.deliver import deliver
from send_jobs.gateways import OutboxGateway
from simulator.response import respond
from simulator.send_world import build_send_world

WORLDS = 200
BASELINE = 0.20
EFFECT = 0.25
BY_STAGE = {"lapsed": 0.50, "active": 0.0}  # half the units each: +25% on average
DECIDED = utc("2026-06-10T15:00:00Z")


def one_world(seed: int, outbox) -> tuple[bool, bool, bool]:
    con = duckdb.connect()
    build_send_world(con, 1600)
    prog = program(global_control_share=0.0)
    camps = [
        replace(campaign(prog, id="lifts", holdout_share=0.5,
                         audience=[{"field": "loyalty_tier", "op": "in",
                                    "value": ["bronze", "silver"]}]),
                priority=1),
        replace(campaign(prog, id="null", holdout_share=0.5,
                         audience=[{"field": "loyalty_tier", "op": "in",
                                    "value": ["gold", "platinum"]}]),
                priority=2),
    ]  # fmt: skip
    # a per-world salt: each world draws its own arms
    salted = replace(prog, assignment_salt=f"coverage-{seed}")
    decide(con, salted, camps, DECIDED)
    deliver(con, salted, DECIDED, OutboxGateway(outbox))  # the world responds to what went out
    respond(con, {"lifts": BY_STAGE, "null": 0.0}, baseline_rate=BASELINE, seed=seed)
    results = analyse(con, DECIDED + timedelta(days=8), {"lifts": 0.5, "null": 0.5})
    rows = results[(results.comparison == "vs_holdout") & (results.metric == "conversion")]
    top = rows[rows.segment == "all"].set_index("campaign_id")
    lifts, null = top.loc["lifts"], top.loc["null"]
    covers_abs = lifts.abs_ci_low <= BASELINE * EFFECT <= lifts.abs_ci_high
    covers_rel = lifts.rel_ci_low <= EFFECT <= lifts.rel_ci_high
    segments = rows[rows.campaign_id == "lifts"].set_index("segment")
    covers_stage = {
        stage: segments.loc[f"lifecycle_stage={stage}", "abs_ci_low"] <= BASELINE * effect
        <= segments.loc[f"lifecycle_stage={stage}", "abs_ci_high"]
        for stage, effect in BY_STAGE.items()
    }  # fmt: skip
    return covers_abs, covers_rel, null.p_value < 0.05, covers_stage


@pytest.mark.slow
def test_intervals_cover_the_true_effect_at_the_nominal_rate(tmp_path):
    outcomes = [one_world(seed, tmp_path / f"outbox-{seed}") for seed in range(WORLDS)]
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
