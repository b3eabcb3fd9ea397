"""Predicted customer value: our BG/NBD and Gamma-Gamma fits on grouped histories against the
lifetimes package (an independent implementation) and the published fit on the CDNOW
transactions it ships; the fit and scores the features build writes; the audience fields."""

import json
from datetime import UTC, datetime

import duckdb
import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.datasets import load_cdnow_summary_data_with_monetary_value
from mini_warehouse import MiniWarehouse, campaign, decided_customers, program, utc

from send_jobs.decide import decide
from targeting import clv
from targeting.customer_value import ensure_tables, predict_customer_value, write_scores

# Fader, Hardie and Lee (2005), CDNOW, 2,357 customers, weeks: r, alpha, a, b; and the
# Gamma-Gamma fit of "RFM and CLV" on the 946 repeat buyers: p, q, v
PUBLISHED_BG = (0.243, 4.414, 0.793, 2.426)
PUBLISHED_GG = (6.25, 3.74, 15.44)


def lifetimes_beta_geo(params: dict) -> BetaGeoFitter:
    """lifetimes' BG/NBD with the given parameters, for its formulas."""
    fitter = BetaGeoFitter()
    fitter.params_ = pd.Series({k: params[k] for k in ("r", "alpha", "a", "b")})
    return fitter


@pytest.fixture(scope="module")
def cdnow():
    return load_cdnow_summary_data_with_monetary_value()


@pytest.fixture(scope="module")
def grouped(cdnow):
    """The CDNOW histories grouped in SQL, as the warehouse fit groups them."""
    con = duckdb.connect()
    con.register("cdnow", cdnow)
    bg = con.execute(
        """SELECT frequency AS x, recency AS t_x, T AS t, count(*) AS n FROM cdnow GROUP BY ALL"""
    ).df()
    gg = con.execute(
        """SELECT frequency AS x, monetary_value AS m, count(*) AS n FROM cdnow
           WHERE frequency > 0 GROUP BY ALL"""
    ).df()
    return bg, gg


def test_beta_geo_on_grouped_histories_matches_lifetimes_and_the_paper(cdnow, grouped):
    bg, _ = grouped
    assert len(bg) < len(cdnow) / 2  # grouping does collapse customers
    ours = clv.fit_beta_geo(bg.x, bg.t_x, bg.t, bg.n)
    theirs = BetaGeoFitter().fit(cdnow.frequency, cdnow.recency, cdnow["T"]).params_
    fitted = np.array([ours.r, ours.alpha, ours.a, ours.b])
    assert ours.converged and ours.customers == len(cdnow)
    np.testing.assert_allclose(fitted, theirs[["r", "alpha", "a", "b"]], rtol=0.01)
    np.testing.assert_allclose(fitted, PUBLISHED_BG, rtol=0.01)
    assert ours.log_likelihood == pytest.approx(-9582.4, abs=0.1)  # the paper's LL


def test_gamma_gamma_on_grouped_spend_matches_lifetimes_and_the_paper(cdnow, grouped):
    _, gg = grouped
    ours = clv.fit_gamma_gamma(gg.x, gg.m, gg.n)
    repeat = cdnow[cdnow.frequency > 0]
    theirs = GammaGammaFitter().fit(repeat.frequency, repeat.monetary_value).params_
    fitted = np.array([ours.p, ours.q, ours.v])
    assert ours.converged and ours.customers == len(repeat) == 946
    np.testing.assert_allclose(fitted, theirs[["p", "q", "v"]], rtol=0.01)
    np.testing.assert_allclose(fitted, PUBLISHED_GG, rtol=0.01)


def test_grouping_does_not_change_the_fit(cdnow, grouped):
    bg, _ = grouped
    one_row_each = clv.fit_beta_geo(cdnow.frequency, cdnow.recency, cdnow["T"])
    by_group = clv.fit_beta_geo(bg.x, bg.t_x, bg.t, bg.n)
    assert by_group.log_likelihood == pytest.approx(one_row_each.log_likelihood, rel=1e-9)
    assert by_group.r == pytest.approx(one_row_each.r, rel=1e-4)
    assert by_group.b == pytest.approx(one_row_each.b, rel=1e-4)


def test_scores_match_lifetimes_with_the_same_parameters(cdnow):
    model = clv.BetaGeo(*PUBLISHED_BG)
    spend = clv.GammaGamma(*PUBLISHED_GG)
    bgf = lifetimes_beta_geo(dict(zip(("r", "alpha", "a", "b"), PUBLISHED_BG, strict=True)))
    ggf = GammaGammaFitter()
    ggf.params_ = pd.Series(dict(zip(("p", "q", "v"), PUBLISHED_GG, strict=True)))
    x, t_x, t, m = cdnow.frequency, cdnow.recency, cdnow["T"], cdnow.monetary_value
    np.testing.assert_allclose(
        clv.probability_alive(model, x, t_x, t),
        bgf.conditional_probability_alive(x, t_x, t), rtol=1e-9,
    )  # fmt: skip
    for horizon in (4, 39, 78):
        np.testing.assert_allclose(
            clv.expected_purchases(model, horizon, x, t_x, t),
            bgf.conditional_expected_number_of_purchases_up_to_time(horizon, x, t_x, t),
            rtol=1e-7,
        )
    np.testing.assert_allclose(
        clv.expected_order_value(spend, x, m),
        ggf.conditional_expected_average_profit(x, m), rtol=1e-9,
    )  # fmt: skip


def test_hand_derived_scores():
    """P(alive) = 1 / (1 + a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)); with no repeat the
    customer is alive; E[value] = p (v + x m) / (p x + q - 1)."""
    model = clv.BetaGeo(r=1.0, alpha=10.0, a=1.0, b=3.0)
    # x=2, t_x=10, T=30: 1 / (1 + 1/4 * (40/20)^3) = 1/3
    assert clv.probability_alive(model, [2, 0], [10, 0], [30, 30]) == pytest.approx([1 / 3, 1])
    spend = clv.GammaGamma(p=2.0, q=3.0, v=10.0)
    # x=2, m=20: 2 (10 + 40) / (4 + 2) = 16.67; x=0: the population mean 2*10/2 = 10
    assert clv.expected_order_value(spend, [2, 0], [20, np.nan]) == pytest.approx([50 / 3, 10])
    with pytest.raises(clv.FitError, match="no finite mean"):
        clv.expected_order_value(clv.GammaGamma(1.0, 0.9, 1.0), [1], [1])


def test_histories_that_cannot_be_right_are_refused():
    with pytest.raises(clv.FitError, match="t_x <= T"):
        clv.fit_beta_geo([1] * 20, [40] * 20, [30] * 20)
    with pytest.raises(clv.FitError, match="some repeat purchases"):
        clv.fit_beta_geo([0] * 20, [0] * 20, [30] * 20)


def test_the_features_build_writes_a_prediction_for_every_buyer(send_con):
    """`retentext run` fitted both models on the send world and scored every customer of
    the purchase history; one customer's scores checked against lifetimes' formulas."""
    fits = {
        r[0]: r[1:]
        for r in send_con.execute(
            """SELECT model, status, parameters, customers, distinct_rows
               FROM predictions.customer_value_fits"""
        ).fetchall()
    }
    buyers = send_con.execute("SELECT count(*) FROM marts.customer_purchase_history").fetchone()[0]
    assert fits["bg_nbd"][0] == "fitted" and fits["bg_nbd"][2] == buyers > 100
    assert fits["gamma_gamma"][0] == "fitted"
    assert fits["bg_nbd"][3] < buyers  # fitted on grouped histories
    rows = send_con.execute(
        """SELECT count(*), count(DISTINCT v.customer_id), count(v.probability_alive),
               count(v.expected_revenue_90d)
           FROM marts.customer_purchase_history AS h
           LEFT JOIN predictions.customer_value AS v USING (customer_id)"""
    ).fetchone()
    assert rows == (buyers, buyers, buyers, buyers)
    params = json.loads(fits["bg_nbd"][1])
    x, t_x, t, p_alive, purchases = send_con.execute(
        """SELECT repeat_purchases, recency_days, age_days, probability_alive,
               expected_purchases_90d
           FROM marts.customer_purchase_history JOIN predictions.customer_value USING (customer_id)
           WHERE repeat_purchases >= 2 ORDER BY customer_id LIMIT 1"""
    ).fetchone()
    bgf = lifetimes_beta_geo(params)
    assert p_alive == pytest.approx(bgf.conditional_probability_alive(x, t_x, t), rel=1e-9)
    assert purchases == pytest.approx(
        bgf.conditional_expected_number_of_purchases_up_to_time(90, x, t_x, t), rel=1e-7
    )


def test_a_base_without_repeat_buyers_gets_a_reason_not_an_error(tmp_path):
    w = MiniWarehouse(tmp_path / "w.duckdb")
    for i in range(30):
        w.con.execute(
            "INSERT INTO marts.customer_purchase_history (customer_id, first_purchase_date, "
            "repeat_purchases, recency_days, age_days, as_of) VALUES (?, DATE '2026-01-01', "
            "0, 0, ?, TIMESTAMP '2026-03-01')",
            [f"C{i}", 59],
        )
    fits = predict_customer_value(w.con, datetime(2026, 3, 1, tzinfo=UTC))
    assert [(f.model, f.status) for f in fits] == [
        ("bg_nbd", "not_fitted"),
        ("gamma_gamma", "not_fitted"),
    ]
    assert "repeat purchases" in fits[0].reason
    assert w.con.execute(
        "SELECT count(*), count(probability_alive) FROM predictions.customer_value"
    ).fetchone() == (30, 0)


AT = "2026-06-10T15:00:00Z"  # 11:00 in New York
NO_CONTROL = {"global_control_share": 0.0}


def test_high_value_with_falling_probability_alive_is_an_audience(tmp_path):
    w = MiniWarehouse(tmp_path / "w.duckdb")
    ensure_tables(w.con)
    value = {  # customer: (probability alive, 30 days ago, expected revenue over 90 days)
        "VALUABLE_FALLING": (0.55, 0.80, 240.0),
        "VALUABLE_STEADY": (0.90, 0.91, 260.0),
        "CHEAP_FALLING": (0.40, 0.70, 15.0),
        "NEW_BUYER": (1.0, None, 300.0),  # first purchase within 30 days: no trend yet
        "PROSPECT": None,  # never bought: no prediction
    }
    for cid, scores in value.items():
        w.customer(cid)
        if scores:
            alive, before, revenue = scores
            w.con.execute(
                "INSERT INTO predictions.customer_value (customer_id, probability_alive, "
                "probability_alive_30d_ago, expected_revenue_90d, as_of) "
                "VALUES (?, ?, ?, ?, TIMESTAMP '2026-06-10')",
                [cid, alive, before, revenue],
            )
    prog = program(**NO_CONTROL)
    save = campaign(prog, id="save", audience=[
        {"field": "expected_revenue_90d", "op": "gte", "value": 100},
        {"field": "probability_alive_change_30d", "op": "lt", "value": -0.1},
    ])  # fmt: skip
    run = decide(w.con, prog, [save], utc(AT))
    picked = decided_customers(w.con, run.run_id)
    assert picked == {"VALUABLE_FALLING"}


def test_a_warehouse_without_predictions_still_decides(tmp_path):
    """A warehouse built before predicted value existed: the audience sees nulls."""
    w = MiniWarehouse(tmp_path / "w.duckdb")
    w.customer("ANYONE")
    prog = program(**NO_CONTROL)
    everyone = campaign(prog, id="everyone")
    run = decide(w.con, prog, [everyone], utc(AT))
    assert run.counts


def test_the_fit_recovers_the_parameters_it_was_drawn_from():
    """100,000 histories drawn from BG/NBD and Gamma-Gamma with known parameters (the
    benchmark's generator, seed fixed): every parameter comes back within 10%."""
    from benchmarks.customer_value import TRUE_BG, TRUE_GG, histories

    h = histories(100_000, seed=7)
    bg = clv.fit_beta_geo(h.repeat_purchases, h.recency_days, h.age_days)
    repeat = h[h.repeat_purchases > 0]
    gg = clv.fit_gamma_gamma(repeat.repeat_purchases, repeat.mean_repeat_value)
    fitted = {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b, "p": gg.p, "q": gg.q, "v": gg.v}
    for name, true in {**TRUE_BG, **TRUE_GG}.items():
        assert fitted[name] == pytest.approx(true, rel=0.10), name


def test_scores_a_model_cannot_give_are_null_not_nan(tmp_path):
    """At the far edge of the parameter space (every buyer in the experiment worlds buys
    exactly twice) the expected purchases overflow: they are stored as NULL, which no
    audience condition matches, while DuckDB would rank a NaN above every number."""
    w = MiniWarehouse(tmp_path / "w.duckdb")
    ensure_tables(w.con)
    w.con.execute(
        "INSERT INTO marts.customer_purchase_history (customer_id, first_purchase_date, "
        "repeat_purchases, recency_days, age_days, mean_repeat_value, as_of) VALUES "
        "('EDGE', DATE '2025-01-01', 1, 50, 400, 24.0, TIMESTAMP '2026-06-10')"
    )
    edge = clv.BetaGeo(r=1.8e7, alpha=2.1e9, a=8.7e5, b=1.15e-6)
    assert np.isnan(clv.expected_purchases(edge, 90, [1], [50], [400])).all()
    write_scores(w.con, edge, clv.GammaGamma(*PUBLISHED_GG), datetime(2026, 6, 10))
    alive, purchases, revenue, nans = w.con.execute(
        """SELECT probability_alive, expected_purchases_90d, expected_revenue_90d,
               count(*) FILTER (WHERE isnan(expected_purchases_90d)) OVER ()
           FROM predictions.customer_value"""
    ).fetchone()
    assert 0 <= alive <= 1 and purchases is None and revenue is None and nans == 0
