"""Guardrail metrics per campaign on a hand-made ledger: delivery, opt-outs within 24 hours
and 7 days (each blamed on the number's last message), cost per message, and the flags
against the program's norm checked with statsmodels."""

from datetime import datetime, timedelta

import pytest
from mini_warehouse import MiniWarehouse
from statsmodels.stats.proportion import proportions_ztest

from experiments.guardrails import measure_guardrails, worse_than_norm_p
from send_jobs.ledger import ensure_schema

AS_OF = datetime(2026, 6, 20, 12, 0)
GENTLE_AT = datetime(2026, 6, 10, 10, 0)
ANNOYING_AT = datetime(2026, 6, 11, 10, 0)
FRESH_AT = datetime(2026, 6, 20, 2, 0)  # ten hours before the analysis


def _message(con, campaign_id: str, i: int, phone: str, at: datetime, status: str) -> None:
    con.execute(
        """INSERT INTO sends.messages (message_id, idempotency_key, run_id, as_of, campaign_id,
            category, customer_id, phone_e164, text, encoding, segments, estimated_cost,
            status, status_at, attempts, handed_over_at)
        VALUES (?, ?, 'r', ?, ?, 'marketing', ?, ?, 'hi', 'GSM-7', 1, 0.0079, ?, ?, 1, ?)""",
        [f"{campaign_id}-{i}", f"{campaign_id}-{i}", at, campaign_id, phone, phone, status, at,
         None if status == "expired" else at],
    )  # fmt: skip


def _reply_stop(con, phone: str, at: datetime) -> None:
    con.execute(
        """INSERT INTO sends.inbound (inbound_id, phone_e164, text, intent, action, flagged,
            occurred_at, received_at, file, line)
        VALUES (?, ?, 'STOP', 'opt_out', 'opt_out', false, ?, ?, 'mo.jsonl', 1)""",
        [f"{phone}-{at:%d%H}", phone, at, at],
    )


def gentle(i: int) -> str:
    return f"+1212600{i:04d}"


def annoying(i: int) -> str:
    return gentle(i) if i < 5 else f"+1212700{i:04d}"  # five numbers got both campaigns


@pytest.fixture(scope="module")
def guardrails(tmp_path_factory):
    con = _three_campaigns(tmp_path_factory.mktemp("guardrails") / "w.duckdb")
    return measure_guardrails(con, AS_OF).set_index("campaign_id"), con


def _three_campaigns(path):
    """gentle, annoying and fresh: their messages, receipts and opt-outs."""
    con = MiniWarehouse(path).con
    ensure_schema(con)
    for i in range(400):
        _message(con, "gentle", i, gentle(i), GENTLE_AT, "rejected" if i >= 396 else "delivered")
    statuses = ["delivered"] * 190 + ["undelivered"] * 6 + ["submitted"] * 4 + ["expired"] * 3
    for i, status in enumerate(statuses):
        _message(con, "annoying", i, annoying(i), ANNOYING_AT, status)
    for i in range(50):
        _message(con, "fresh", i, f"+1212800{i:04d}", FRESH_AT, "delivered")
    # annoying: 30 STOPs within two hours (the five shared numbers among them: the last
    # message they got was annoying's), 10 web-form opt-outs on day 3, 5 STOPs on day 8
    for i in range(30):
        _reply_stop(con, annoying(i), ANNOYING_AT + timedelta(hours=2))
    for i in range(30, 40):
        con.execute(
            "INSERT INTO raw.consent VALUES (?, ?, ?, 'sms', 'marketing', 'opt_out', ?)",
            [f"K{i}", annoying(i), annoying(i), ANNOYING_AT + timedelta(days=3)],
        )
    for i in range(40, 45):
        _reply_stop(con, annoying(i), ANNOYING_AT + timedelta(days=8))
    # gentle: two STOPs within a day, two on day 3
    for i in (100, 101):
        _reply_stop(con, gentle(i), GENTLE_AT + timedelta(hours=1))
    for i in (102, 103):
        _reply_stop(con, gentle(i), GENTLE_AT + timedelta(days=3))
    _reply_stop(con, "+12128000000", FRESH_AT + timedelta(hours=1))  # fresh: too soon to count
    return con


def test_counts_and_rates_by_hand(guardrails):
    g, _ = guardrails
    a, k, f = g.loc["annoying"], g.loc["gentle"], g.loc["fresh"]
    assert (a.messages, a.delivered, a.settled) == (200, 190, 196)  # expired never went out
    assert a.delivery_rate == pytest.approx(190 / 196)
    assert (a.exposed_24h, a.opt_outs_24h, a.exposed_7d, a.opt_outs_7d) == (200, 30, 200, 40)
    assert (k.messages, k.delivered, k.settled) == (400, 396, 400)
    # the shared numbers' STOPs are annoying's, not gentle's
    assert (k.exposed_24h, k.opt_outs_24h, k.exposed_7d, k.opt_outs_7d) == (400, 2, 400, 4)
    assert (f.exposed_24h, f.opt_outs_24h, f.exposed_7d) == (0, 0, 0)
    assert f.opt_out_rate_24h != f.opt_out_rate_24h  # NaN: no message is a day old yet
    assert a.opt_out_rate_7d == pytest.approx(0.20)
    assert a.cost_per_message == pytest.approx(0.0079)
    assert a.opt_out_rate_24h_norm == pytest.approx(2 / 400)  # every other campaign's


def test_flags_against_the_programs_norm_match_statsmodels(guardrails):
    g, con = guardrails
    a, k = g.loc["annoying"], g.loc["gentle"]
    assert a.opt_out_rate_24h_flag and a.opt_out_rate_7d_flag and a.delivery_rate_flag
    assert not (k.opt_out_rate_24h_flag or k.opt_out_rate_7d_flag or k.delivery_rate_flag)
    _, p = proportions_ztest([190, 396 + 50], [196, 400 + 50], alternative="smaller")
    assert worse_than_norm_p(190, 196, 446, 450, "lower") == pytest.approx(p)
    _, p = proportions_ztest([30, 2], [200, 400], alternative="larger")
    assert worse_than_norm_p(30, 200, 2, 400, "higher") == pytest.approx(p)
    stored = con.execute("SELECT count(*) FROM experiments.campaign_guardrails").fetchone()[0]
    assert stored == 3


def test_a_campaign_alone_is_never_flagged(tmp_path):
    w = MiniWarehouse(tmp_path / "w.duckdb")
    ensure_schema(w.con)
    for i in range(20):
        _message(w.con, "only", i, gentle(i), GENTLE_AT, "delivered")
        _reply_stop(w.con, gentle(i), GENTLE_AT + timedelta(hours=1))
    row = measure_guardrails(w.con, AS_OF).iloc[0]
    assert row.opt_out_rate_24h == 1.0 and not row.opt_out_rate_24h_flag
    assert row.opt_out_rate_24h_norm != row.opt_out_rate_24h_norm  # NaN: no other campaign


def test_retentext_experiments_names_the_flagged_guardrails(tmp_path, capsys):
    from orchestration.cli import main

    _three_campaigns(tmp_path / "w.duckdb").close()
    assert main(["experiments", "--as-of", "2026-06-20T12:00:00Z",
                 "--warehouse", str(tmp_path / "w.duckdb")]) == 0  # fmt: skip
    err = " ".join(capsys.readouterr().err.split())
    assert "guardrail worse than the program's norm: annoying: opt_out_rate_24h 15.00% " \
           "(program 0.50%)" in err  # fmt: skip
    assert "gentle:" not in err
