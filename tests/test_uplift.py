"""Uplift targeting: the Qini curve against scikit-uplift and a hand derivation, the T-learner
on effects known by construction, the campaign option, and the policy in the decisions."""

import numpy as np
import pandas as pd
import pytest
from mini_warehouse import MiniWarehouse, campaign, program, utc
from sklift.metrics import qini_curve as sklift_qini_curve

from send_jobs.campaign_specs import CampaignError
from send_jobs.decide import decide
from targeting import uplift
from targeting.qini import qini, qini_coefficient, qini_curve

AT = "2026-06-10T15:00:00Z"  # 11:00 in New York
NO_CONTROL = {"global_control_share": 0.0}


def test_qini_by_hand():
    """Top 1: 10 - 0 (no control yet); top 2: 10 - 2*1/1 = 8; top 3: 10 - 2*2/1 = 6;
    all 4: 10 - 6*2/2 = 4. Against the line to 4, the area is 18; over 4 squared, 1.125."""
    units, curve = qini_curve([0.9, 0.8, 0.5, 0.1], [1, 0, 1, 0], [10, 2, 0, 4])
    assert units.tolist() == [0, 1, 2, 3, 4]
    assert curve.tolist() == [0, 10, 8, 6, 4]
    assert qini_coefficient(units, curve) == pytest.approx(1.125)


def test_qini_curve_matches_scikit_uplift_with_ties():
    """scikit-uplift takes 0/1 outcomes; the curve is linear in the outcome, so margins add
    nothing the hand derivation above does not cover."""
    rng = np.random.default_rng(3)
    n = 5_000
    score = np.round(rng.normal(size=n), 1)  # many ties
    treated = rng.random(n) < 0.4
    bought = (rng.random(n) < 0.1 + 0.1 * treated * (score > 0)).astype(int)
    units, curve = qini_curve(score, treated, bought)
    their_units, their_curve = sklift_qini_curve(bought, score, treated.astype(int))
    np.testing.assert_array_equal(units, their_units)
    np.testing.assert_allclose(curve, their_curve, rtol=1e-10, atol=1e-9)
    random_line = their_curve[-1] * their_units / their_units[-1]
    area = np.trapezoid(their_curve - random_line, their_units) / n**2
    assert qini_coefficient(units, curve) == pytest.approx(area, rel=1e-10)


def test_a_random_score_has_a_qini_interval_around_zero_and_a_good_one_above():
    rng = np.random.default_rng(5)
    n = 8_000
    x = rng.normal(size=n)
    treated = rng.random(n) < 0.5
    margin = 20.0 * (rng.random(n) < 0.1 + 0.15 * treated * (x > 0.5))
    good = qini(x, treated, margin, bootstrap=200, seed=1)
    noise = qini(rng.normal(size=n), treated, margin, bootstrap=200, seed=1)
    assert good.ci_low > 0
    assert noise.ci_low < 0 < noise.ci_high


def synthetic_units(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Randomised units whose true incremental margin depends on the stage the decision saw:
    lapsed +12 (persuadable), new -6 (a text puts them off), active 0 (sure things: they buy
    anyway, more the more they spent lately)."""
    rng = np.random.default_rng(seed)
    stage = rng.choice(["active", "lapsed", "new"], n)
    pre = rng.gamma(1.5, 30.0, n) * (stage == "active")
    truth = np.select([stage == "lapsed", stage == "new"], [12.0, -6.0], 0.0)
    treated = rng.random(n) < 0.5
    margin = 0.3 * pre + 10.0 * (stage == "new") + treated * truth + rng.normal(0, 8, n)
    frame = pd.DataFrame({
        "lifecycle_stage": stage, "loyalty_tier": rng.choice(["bronze", "gold"], n),
        "rfm_segment": "needs_attention", "pre_period_revenue": pre,
        "orders_count": rng.poisson(3, n), "lifetime_revenue": rng.gamma(2, 50, n),
        "days_since_last_order": rng.uniform(0, 200, n), "probability_alive": np.nan,
        "expected_revenue_90d": np.nan, "treated": treated, "margin": margin,
    })  # fmt: skip
    return frame, truth


def test_the_t_learner_finds_who_a_text_changes():
    train, _ = synthetic_units(6_000, seed=11)
    model = uplift.TLearner(seed=0).fit(train, train.treated, train.margin)
    later, truth = synthetic_units(6_000, seed=12)  # a later randomised period
    predicted = model.predict(later)
    for stage, effect in (("lapsed", 12.0), ("new", -6.0), ("active", 0.0)):
        assert predicted[later.lifecycle_stage == stage].mean() == pytest.approx(effect, abs=2.5)
    q = qini(predicted, later.treated, later.margin, bootstrap=200, seed=2)
    assert q.ci_low > 0
    # an unseen stage is a missing category, not an error
    assert np.isfinite(model.predict(later.assign(lifecycle_stage="churned"))).all()


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"targeting": {"mode": "uplift"}, "holdout_share": 0.0}, "holdout_share must be above"),
        ({"targeting": {"mode": "uplift"}, "category": "transactional", "holdout_share": 0.1},
         "goes to everyone"),
        ({"targeting": {"mode": "best"}}, "must be one of all, uplift"),
        ({"targeting": {"mode": "uplift", "share": 0.1}, "holdout_share": 0.1}, "unknown"),
        ({"targeting": {"mode": "uplift", "learning_share": 1.5}, "holdout_share": 0.1},
         "share from 0"),
        ({"targeting": {"mode": "uplift", "offer_cost": -1}, "holdout_share": 0.1}, "USD"),
    ],
)  # fmt: skip
def test_targeting_options_are_checked(fields, problem):
    with pytest.raises(CampaignError, match=problem):
        campaign(program(), **fields)


def decisions(w, run_id) -> dict[str, tuple]:
    return {
        r[0]: r[1:]
        for r in w.con.execute(
            """SELECT customer_id, arm, outcome, targeting, predicted_uplift, reason
               FROM sends.decisions WHERE run_id = ?""",
            [run_id],
        ).fetchall()
    }


def scored_world(tmp_path, n: int = 60) -> MiniWarehouse:
    """n customers; the even ones are predicted to gain 1 USD of margin from a text, the odd
    ones 0.01 USD; the last one has no prediction."""
    w = MiniWarehouse(tmp_path / "w.duckdb")
    uplift.ensure_tables(w.con)
    for i in range(n):
        w.customer(f"C{i:03d}")
        if i < n - 1:
            w.con.execute(
                "INSERT INTO predictions.campaign_uplift VALUES ('promo', ?, ?, "
                "TIMESTAMP '2026-06-09')",
                [f"C{i:03d}", 1.0 if i % 2 == 0 else 0.01],
            )
    return w


def test_uplift_targeting_texts_only_whom_the_model_says_it_pays_to(tmp_path):
    w = scored_world(tmp_path)
    prog = program(**NO_CONTROL)
    targeting = {"mode": "uplift", "learning_share": 0.0, "offer_cost": 0.05}
    promo = campaign(prog, holdout_share=0.3, targeting=targeting)
    run = decide(w.con, prog, [promo], utc(AT))
    got = decisions(w, run.run_id)
    assert len(got) == 60
    for cid, (arm, outcome, targeting, predicted, reason) in got.items():
        i = int(cid[1:])
        expected = "no_model" if i == 59 else "selected" if i % 2 == 0 else "not_selected"
        assert targeting == expected, cid
        assert predicted == (None if i == 59 else 1.0 if i % 2 == 0 else 0.01)
        if arm == "holdout":
            assert outcome == "held_out"  # the holdout measures the whole policy
        elif expected == "not_selected":
            assert outcome == "not_targeted"
            assert reason.startswith("uplift targeting: predicted incremental margin 0.0100")
        else:
            assert outcome == "sent"
    arms = {arm for arm, *_ in got.values()}
    assert arms == {"treatment", "holdout"}
    texted = {r[0] for r in w.con.execute("SELECT customer_id FROM sends.messages").fetchall()}
    assert texted == {c for c, (arm, outcome, *_) in got.items() if outcome == "sent"}


def test_the_learning_share_is_texted_whatever_the_model_says(tmp_path):
    w = scored_world(tmp_path, n=400)
    prog = program(**NO_CONTROL)
    targeting = {"mode": "uplift", "learning_share": 0.5, "offer_cost": 0.05}
    promo = campaign(prog, holdout_share=0.2, targeting=targeting)
    run = decide(w.con, prog, [promo], utc(AT))
    got = decisions(w, run.run_id)
    learning = [c for c, (_, _, t, *_) in got.items() if t == "learning"]
    assert 140 < len(learning) < 260  # half of 400, drawn by the assignment hash
    assert all(got[c][1] in ("sent", "held_out") for c in learning)
    low = [c for c, (arm, _, t, p, _) in got.items()
           if p == 0.01 and arm == "treatment" and t != "learning"]  # fmt: skip
    assert low and all(got[c][1] == "not_targeted" for c in low)


def test_a_campaign_without_targeting_records_none(tmp_path):
    w = scored_world(tmp_path, n=10)
    prog = program(**NO_CONTROL)
    run = decide(w.con, prog, [campaign(prog)], utc(AT))
    assert {(o, t) for _, o, t, *_ in decisions(w, run.run_id).values()} == {("sent", None)}
