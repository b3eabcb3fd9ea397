"""Send-run rules on hand-made warehouses: quiet hours per region and across DST, consent at
the send moment, caps, holdout and global control, suppression, priority, fallbacks."""

import hashlib

import pytest
from mini_warehouse import FL, LONDON, NY, PARIS, MiniWarehouse, campaign, program, utc

from send_jobs.decide import decide
from send_jobs.templates import compile_template, render_python

NO_CONTROL = {"global_control_share": 0.0}


def decisions(w, run) -> dict[tuple[str, str], tuple]:
    rows = w.con.execute(
        "SELECT campaign_id, customer_id, outcome, reason, arm, rendered_text, fallback_fields "
        "FROM sends.decisions WHERE run_id = ?",
        [run.run_id],
    ).fetchall()
    return {(r[0], r[1]): r[2:] for r in rows}


def run(w, prog, camps, at: str, **kw):
    return decide(w.con, prog, camps, utc(at), **kw)


@pytest.mark.parametrize(
    ("where", "at", "outcome", "local"),
    [
        # the same UTC time either side of the US spring-forward (2026-03-08)
        (NY, "2026-03-07T12:30:00Z", "deferred", "Sat 07:30"),
        (NY, "2026-03-08T12:30:00Z", "sent", None),
        # 20:30 in New York is inside the federal window, outside Florida's 20:00 end
        (NY, "2026-06-10T00:30:00Z", "sent", None),
        (FL, "2026-06-10T00:30:00Z", "deferred", "Tue 20:30"),
        # France: 8-22, not on Sundays or public holidays (Bastille Day 2026 is a Tuesday)
        (PARIS, "2026-06-14T10:00:00Z", "deferred", "Sun 12:00"),
        (PARIS, "2026-07-14T10:00:00Z", "deferred", "Tue 12:00"),
        (PARIS, "2026-07-15T10:00:00Z", "sent", None),
        (PARIS, "2026-07-15T20:30:00Z", "deferred", "Wed 22:30"),
        # the UK falls back to the conservative default window (9-20)
        (LONDON, "2026-07-15T07:30:00Z", "deferred", "Wed 08:30"),
        # European autumn change (2026-10-25): 07:30 UTC is 08:30 CET the day after
        (PARIS, "2026-10-24T05:30:00Z", "deferred", "Sat 07:30"),
        (PARIS, "2026-10-26T07:30:00Z", "sent", None),
    ],
)
def test_quiet_hours_in_the_recipients_local_time(tmp_path, where, at, outcome, local):
    w = MiniWarehouse(tmp_path / "w.duckdb")
    w.customer("C1", where=where)
    prog = program(**NO_CONTROL)
    r = run(w, prog, [campaign(prog)], at)
    got = decisions(w, r)[("promo", "C1")]
    assert got[0] == outcome, got
    if local:
        assert f"local time {local}" in got[1]


def test_a_deferred_recipient_is_sent_once_their_window_opens(tmp_path):
    w = MiniWarehouse(tmp_path / "w.duckdb")
    w.customer("C1", where=NY)
    prog = program(**NO_CONTROL)
    camps = [campaign(prog)]
    assert decisions(w, run(w, prog, camps, "2026-03-07T12:30:00Z"))[("promo", "C1")][0] == (
        "deferred"
    )
    later = run(w, prog, camps, "2026-03-07T14:00:00Z")
    assert decisions(w, later)[("promo", "C1")][0] == "sent"
    assert w.con.execute("SELECT count(*) FROM sends.messages").fetchone()[0] == 1


def test_consent_as_of_the_send_moment(tmp_path):
    w = MiniWarehouse(tmp_path / "w.duckdb")
    at = "2026-06-10T15:00:00Z"
    w.customer("OUT_A_MINUTE_AGO")
    w.consent("OUT_A_MINUTE_AGO", "marketing", "opt_out", "2026-06-10T14:59:00Z")
    w.customer("OUT_A_MINUTE_LATER")
    w.consent("OUT_A_MINUTE_LATER", "marketing", "opt_out", "2026-06-10T15:01:00Z")
    w.customer("SAME_INSTANT")  # opt-in and opt-out at the same instant: the opt-out wins
    w.consent("SAME_INSTANT", "marketing", "opt_in", "2026-06-01T00:00:00Z")
    w.consent("SAME_INSTANT", "marketing", "opt_out", "2026-06-01T00:00:00Z")
    w.customer("NEVER", opted_in={})
    w.customer("TRANSACTIONAL_ONLY", opted_in={"transactional": "2025-01-01T00:00:00Z"})
    w.customer("REPLIED_STOP", phone="+12125550199")
    w.customer("RESUBSCRIBED")
    w.consent("RESUBSCRIBED", "marketing", "opt_out", "2026-01-01T00:00:00Z")
    w.consent("RESUBSCRIBED", "marketing", "opt_in", "2026-02-01T00:00:00Z")
    prog = program(**NO_CONTROL)
    # a STOP reply loaded from the receiver 2 minutes before the run
    w.reply("+12125550199", "opt_out", "2026-06-10T14:58:00Z")
    promo = campaign(prog)
    service = campaign(prog, id="service", category="transactional", priority=1)
    d = decisions(w, run(w, prog, [promo, service], at))
    assert d[("promo", "OUT_A_MINUTE_AGO")][:2] == (
        "suppressed",
        "no consent: opted out of marketing",
    )
    assert d[("promo", "SAME_INSTANT")][0] == "suppressed"
    assert d[("promo", "NEVER")][1] == "no consent: never opted in to marketing"
    assert d[("promo", "REPLIED_STOP")][1] == "no consent: opted out of marketing"
    assert d[("service", "REPLIED_STOP")][1] == "no consent: opted out of transactional"
    assert d[("promo", "TRANSACTIONAL_ONLY")][0] == "suppressed"
    assert d[("service", "TRANSACTIONAL_ONLY")][0] == "sent"
    assert d[("promo", "RESUBSCRIBED")][0] == "sent" or d[("service", "RESUBSCRIBED")][0] == (
        "sent"
    )
    # not yet opted out at the send moment: gets the transactional message (priority 1)
    assert d[("service", "OUT_A_MINUTE_LATER")][0] == "sent"
    sent = set(w.con.execute("SELECT customer_id, category FROM sends.messages").fetchall())
    assert not {c for c, k in sent if k == "marketing"} & {"OUT_A_MINUTE_AGO", "SAME_INSTANT"}
    assert not {c for c, _ in sent} & {"NEVER", "REPLIED_STOP"}


def test_sms_consent_belongs_to_the_number_it_was_given_for(tmp_path):
    """A customer whose number changed: the old number's opt-in does not follow them; an
    opt-in for the new number does."""
    w = MiniWarehouse(tmp_path / "w.duckdb")
    w.customer("MOVED", phone="+12125550170", opted_in={})
    w.consent("MOVED", "marketing", "opt_in", "2025-01-01T00:00:00Z", phone="+12125550160")
    w.customer("MOVED_AND_OPTED_IN", phone="+12125550171", opted_in={})
    w.consent("MOVED_AND_OPTED_IN", "marketing", "opt_in", "2025-01-01T00:00:00Z",
              phone="+12125550161")  # fmt: skip
    w.consent("MOVED_AND_OPTED_IN", "marketing", "opt_in", "2026-01-01T00:00:00Z")
    prog = program(**NO_CONTROL)
    d = decisions(w, run(w, prog, [campaign(prog)], "2026-06-10T15:00:00Z"))
    assert d[("promo", "MOVED")][:2] == ("suppressed", "no consent: never opted in to marketing")
    assert d[("promo", "MOVED_AND_OPTED_IN")][0] == "sent"


def test_start_reply_restores_only_categories_once_consented(tmp_path):
    w = MiniWarehouse(tmp_path / "w.duckdb")
    w.customer("C1", phone="+12125550177", opted_in={"transactional": "2025-01-01T00:00:00Z"})
    w.reply("+12125550177", "opt_out", "2026-06-01T00:00:00Z")
    w.reply("+12125550177", "opt_in", "2026-06-02T00:00:00Z")
    prog = program(**NO_CONTROL)
    promo = campaign(prog)
    service = campaign(prog, id="service", category="transactional", priority=1)
    before = decisions(w, run(w, prog, [promo, service], "2026-06-01T15:00:00Z"))
    assert before[("service", "C1")][1] == "no consent: opted out of transactional"
    after = decisions(w, run(w, prog, [promo, service], "2026-06-03T15:00:00Z"))
    assert after[("service", "C1")][0] == "sent"
    assert after[("promo", "C1")][1] == "no consent: opted out of marketing"


def test_start_undoes_only_an_opt_out_by_reply_and_yes_is_no_opt_in(tmp_path):
    """A web or CRM opt-out stands against START; YES (answering a reminder) changes
    nothing; START restores what a STOP reply took away."""
    w = MiniWarehouse(tmp_path / "w.duckdb")
    w.customer("WEB_OUT", phone="+12125550181")
    w.consent("WEB_OUT", "marketing", "opt_out", "2026-06-01T00:00:00Z")
    w.reply("+12125550181", None, "2026-06-02T00:00:00Z", text="YES")
    w.reply("+12125550181", "opt_in", "2026-06-03T00:00:00Z", text="START")
    w.customer("REPLY_OUT", phone="+12125550182")
    w.reply("+12125550182", "opt_out", "2026-06-01T00:00:00Z")
    w.reply("+12125550182", "opt_in", "2026-06-03T00:00:00Z", text="START")
    w.customer("NEVER", phone="+12125550183", opted_in={})
    w.reply("+12125550183", "opt_out", "2026-06-01T00:00:00Z")
    w.reply("+12125550183", "opt_in", "2026-06-03T00:00:00Z", text="UNSTOP")
    prog = program(**NO_CONTROL)
    d = decisions(w, run(w, prog, [campaign(prog)], "2026-06-04T15:00:00Z"))
    assert d[("promo", "WEB_OUT")][1] == "no consent: opted out of marketing"
    assert d[("promo", "REPLY_OUT")][0] == "sent"
    assert d[("promo", "NEVER")][1] == "no consent: opted out of marketing"


def test_marketing_caps_across_campaigns_but_not_transactional(tmp_path):
    w = MiniWarehouse(tmp_path / "w.duckdb")
    w.customer("C1")
    prog = program(**NO_CONTROL)
    camps = [campaign(prog, id=f"c{i}", priority=10 + i) for i in range(5)]
    service = campaign(prog, id="service", category="transactional", priority=1)
    days = ["2026-06-01", "2026-06-02", "2026-06-03", "2026-06-04", "2026-06-08"]
    outcomes = []
    for day in days:
        first = decisions(w, run(w, prog, camps, f"{day}T15:00:00Z"))
        second = decisions(w, run(w, prog, camps, f"{day}T17:00:00Z"))  # same day, 2 h later
        outcomes.append(
            (
                sorted(k[0] for k, v in first.items() if v[0] == "sent"),
                {v[1] for v in second.values() if v[0] != "sent"},
                sum(v[0] == "sent" for v in second.values()),
            )
        )
    # one per run by priority, then the 24 h cap, then 3 per 7 days on day 4
    assert outcomes[0][0] == ["c0"]
    assert outcomes[0][2] == 0 and "frequency cap: 1 per 24 h" in outcomes[0][1]
    assert outcomes[1][0] == ["c1"] and outcomes[2][0] == ["c2"]
    assert outcomes[3][0] == [] and outcomes[3][2] == 0
    # a run for 06-04 executed after the 06-08 one sees that c3 went out then
    d4 = decisions(w, run(w, prog, camps, "2026-06-04T19:00:00Z"))
    assert d4[("c3", "C1")][1] == "already received for this occasion"
    assert d4[("c4", "C1")][1] == "frequency cap: 3 per 7 days"
    assert outcomes[4][0] == ["c3"]  # 7 days after the first send, a slot frees up
    # a transactional message ignores the marketing caps
    d = decisions(w, run(w, prog, [*camps, service], "2026-06-08T19:00:00Z"))
    assert d[("service", "C1")][0] == "sent"


def test_a_run_for_an_earlier_hour_executed_later_respects_the_cap(tmp_path):
    """The 16:00 run went first and texted C1; the 15:00 run executed after it must not
    text C1 again (cap 1 per 24 h), whatever the order the runs executed in."""
    w = MiniWarehouse(tmp_path / "w.duckdb")
    w.customer("C1")
    prog = program(**NO_CONTROL)
    later = decisions(w, run(w, prog, [campaign(prog, id="a")], "2026-06-10T16:00:00Z"))
    assert later[("a", "C1")][0] == "sent"
    earlier = decisions(w, run(w, prog, [campaign(prog, id="b")], "2026-06-10T15:00:00Z"))
    assert earlier[("b", "C1")][:2] == ("suppressed", "frequency cap: 1 per 24 h")
    assert w.con.execute("SELECT count(*) FROM sends.messages").fetchone()[0] == 1


def test_the_opt_out_line_stays_until_a_marketing_text_was_handed_over(tmp_path):
    """A first marketing message that expired unsent does not count as the first one."""
    from send_jobs.deliver import deliver
    from send_jobs.gateways import OutboxGateway

    w = MiniWarehouse(tmp_path / "w.duckdb")
    w.customer("C1")
    prog = program(**NO_CONTROL)
    first = run(w, prog, [campaign(prog, id="a")], "2026-06-10T15:00:00Z")
    assert "Reply STOP" in decisions(w, first)[("a", "C1")][3]
    expired_at = utc("2026-06-11T16:00:00Z")  # handed over 25 h later: past its validity
    done = deliver(w.con, prog, first.as_of, OutboxGateway(tmp_path / "out"),
                   clock=lambda: expired_at)  # fmt: skip
    assert done.counts["expired"] == 1
    second = decisions(w, run(w, prog, [campaign(prog, id="b")], "2026-06-12T15:00:00Z"))
    assert second[("b", "C1")][0] == "sent" and "Reply STOP" in second[("b", "C1")][3]
    deliver(w.con, prog, utc("2026-06-12T15:00:00Z"), OutboxGateway(tmp_path / "out"))
    third = decisions(w, run(w, prog, [campaign(prog, id="c")], "2026-06-14T15:00:00Z"))
    assert third[("c", "C1")][0] == "sent" and "Reply STOP" not in third[("c", "C1")][3]


def _hash01(text: str) -> float:
    return int(hashlib.md5(text.encode()).hexdigest()[:13], 16) / 16**13


@pytest.mark.slow
def test_holdout_and_global_control_are_stable_hashes_and_never_sent(tmp_path):
    w = MiniWarehouse(tmp_path / "w.duckdb")
    ids = [w.customer(f"C{i:05d}", phone=f"+1212{i:07d}") for i in range(3000)]
    prog = program(global_control_share=0.05)
    promo = campaign(prog, holdout_share=0.10)
    service = campaign(prog, id="service", category="transactional", priority=1,
                       holdout_share=0.0)  # fmt: skip
    r = run(w, prog, [promo], "2026-06-10T15:00:00Z")
    d = decisions(w, r)
    salt = prog.assignment_salt
    for cid in ids:  # arms recomputed independently with hashlib
        expected = (
            "global_control"
            if _hash01(f"{salt}:global:{cid}") < 0.05
            else "holdout"
            if _hash01(f"{salt}:promo:{cid}") < 0.10
            else "treatment"
        )
        outcome, reason, arm = d[("promo", cid)][:3]
        assert arm == expected
        assert outcome == ("sent" if arm == "treatment" else "held_out")
        if arm != "treatment":
            assert reason.endswith("would have been sent")
    arms = [v[2] for v in d.values()]
    assert 0.04 < arms.count("global_control") / 3000 < 0.06
    assert 0.08 < arms.count("holdout") / (3000 - arms.count("global_control")) < 0.12
    sent = {r[0] for r in w.con.execute("SELECT customer_id FROM sends.messages").fetchall()}
    assert sent == {cid for cid in ids if d[("promo", cid)][2] == "treatment"}
    # the global control still gets transactional messages
    d2 = decisions(w, run(w, prog, [service], "2026-06-11T15:00:00Z"))
    control = [cid for cid in ids if d[("promo", cid)][2] == "global_control"]
    assert all(d2[("service", cid)][0] == "sent" for cid in control)


def test_suppression_duplicates_failures_and_already_bought(tmp_path):
    w = MiniWarehouse(tmp_path / "w.duckdb")
    at = "2026-06-10T15:00:00Z"
    w.customer("SHARED_A", phone="+12125550001")
    w.customer("SHARED_B", phone="+12125550001")
    w.customer("FAILED_TWICE", phone="+12125550002")
    w.customer("FAILED_ONCE", phone="+12125550003")
    w.customer("BOUGHT")
    w.customer("DUE")
    for cid in ("BOUGHT", "DUE"):
        w.due(cid, "P0001", "House Blend", at)
    w.order("BOUGHT", "P0001", "2026-06-09T10:00:00Z")
    prog = program(**NO_CONTROL)
    from send_jobs.ledger import ensure_schema

    ensure_schema(w.con)
    for i, (phone, status) in enumerate(
        [("+12125550002", "undelivered"), ("+12125550002", "rejected"),
         ("+12125550003", "undelivered")]
    ):  # fmt: skip
        w.con.execute(
            "INSERT INTO sends.messages VALUES (?, ?, 'old', '2026-01-01', 'x', 'marketing', "
            "'C', ?, 'US', 'NY', 'America/New_York', 't', 'GSM-7', 1, 0, ?, '2026-01-01', 1, "
            "'kannel', 'b', NULL, NULL, NULL, NULL, NULL)",
            [f"{i:016x}", f"k{i}", phone, status],
        )
    promo = campaign(prog, audience=[{"field": "lifecycle_stage", "op": "eq", "value": "active"}])
    reminder = campaign(
        prog,
        id="reminder",
        priority=5,
        trigger={"type": "replenishment_due"},
        variants=[{"id": "v", "template": "{{ first_name }}, restock {{ product_name }}?"}],
    )
    d = decisions(w, run(w, prog, [promo, reminder], at))
    shared = sorted([d[("promo", "SHARED_A")][:2], d[("promo", "SHARED_B")][:2]])
    assert shared == [
        ("sent", "sent"),
        ("suppressed", "duplicate number: another customer shares it"),
    ]
    assert d[("promo", "FAILED_TWICE")][1] == "number suppressed: 2+ hard failures"
    assert d[("promo", "FAILED_ONCE")][0] == "sent"
    assert d[("reminder", "BOUGHT")][1] == "already bought P0001"
    assert d[("reminder", "DUE")][0] == "sent"
    assert d[("promo", "DUE")][1] == "one message per run: reminder goes first"
    assert d[("promo", "BOUGHT")][0] == "sent"


def test_rendering_fallbacks_and_literal_values(tmp_path):
    w = MiniWarehouse(tmp_path / "w.duckdb")
    names = {"NAMED": "Zoë", "BLANK": "   ", "MISSING": None, "HOSTILE": "{{ 7*7 }} O'Brien"}
    for cid, name in names.items():
        w.customer(cid, first_name=name)
    prog = program(**NO_CONTROL)
    promo = campaign(prog)
    d = decisions(w, run(w, prog, [promo], "2026-06-10T15:00:00Z"))
    links = set()
    template = compile_template("Hi {{ first_name }}, news: {{ link }}")
    for cid, name in names.items():
        outcome, _, _, text, fallbacks = d[("promo", cid)]
        assert outcome == "sent"
        assert text.startswith("Northwind Goods: Hi ")
        assert text.endswith(" Reply STOP to opt out.")  # first marketing message
        link = text.split("news: ")[1].split(" ")[0]
        links.add(link)
        value = name if name and name.strip() else "there"
        body = text.removeprefix("Northwind Goods: ").removesuffix(" Reply STOP to opt out.")
        assert body == render_python(template, {"first_name": value, "link": link})
        assert fallbacks == ([] if value == name else ["first_name"])
    assert "{{ 7*7 }} O'Brien" in d[("promo", "HOSTILE")][3]
    assert len(links) == len(names)  # a tracked link code per recipient
    # the opt-out line goes only into a subscriber's first marketing message handed over
    from send_jobs.deliver import deliver
    from send_jobs.gateways import OutboxGateway

    deliver(w.con, prog, utc("2026-06-10T15:00:00Z"), OutboxGateway(tmp_path / "out"))
    d2 = decisions(w, run(w, prog, [campaign(prog, id="later")], "2026-06-12T15:00:00Z"))
    assert "STOP" not in d2[("later", "NAMED")][3]


def test_a_repeated_run_decides_and_queues_nothing_new(tmp_path):
    w = MiniWarehouse(tmp_path / "w.duckdb")
    for i in range(20):
        w.customer(f"C{i}")
    prog = program(**NO_CONTROL)
    camps = [campaign(prog)]
    first = run(w, prog, camps, "2026-06-10T15:00:00Z")
    again = run(w, prog, camps, "2026-06-10T15:00:00Z")
    assert again.resumed and again.counts == first.counts == {"sent": 20}
    assert w.con.execute("SELECT count(*) FROM sends.messages").fetchone()[0] == 20
    assert w.con.execute("SELECT count(*) FROM sends.decisions").fetchone()[0] == 20
    dry = run(w, prog, camps, "2026-06-10T16:00:00Z", dry_run=True)
    assert dry.counts == {"suppressed": 20}  # caps see the real run; the dry run queues nothing
    assert w.con.execute("SELECT count(*) FROM sends.messages").fetchone()[0] == 20


def test_a_run_without_active_campaigns_is_recorded_empty(tmp_path):
    from dataclasses import replace
    from datetime import date

    w = MiniWarehouse(tmp_path / "w.duckdb")
    w.customer("C1")
    prog = program(**NO_CONTROL)
    ended = replace(campaign(prog), active_until=date(2020, 1, 1))
    r = run(w, prog, [ended], "2026-06-10T15:00:00Z")
    assert r.counts == {} and not r.resumed
    assert w.con.execute("SELECT candidates FROM sends.runs").fetchone()[0] == 0
    assert run(w, prog, [ended], "2026-06-10T15:00:00Z").resumed


def test_a_checkout_without_an_order_is_reminded_once_in_its_window(tmp_path):
    w = MiniWarehouse(tmp_path / "w.duckdb")
    at = "2026-06-10T15:00:00Z"  # 11:00 in New York
    checkouts = {  # customer: the checkouts they started
        "WAITING": ["2026-06-10T12:00:00Z"],
        "ORDERED_SINCE": ["2026-06-10T12:00:00Z"],
        "TOO_SOON": ["2026-06-10T14:00:00Z"],
        "TOO_LATE": ["2026-06-09T14:00:00Z"],
        "TWICE": ["2026-06-10T10:00:00Z", "2026-06-10T12:30:00Z"],
        "OPTED_OUT": ["2026-06-10T12:00:00Z"],
    }
    for cid, times in checkouts.items():
        w.customer(cid)
        for i, started in enumerate(times):
            w.event(cid, f"{cid}-{i}", "checkout_started", started)
    w.order("ORDERED_SINCE", "ANY-SKU", "2026-06-10T13:00:00Z")  # not in the marts yet
    w.consent("OPTED_OUT", "marketing", "opt_out", "2026-06-10T13:00:00Z")
    prog = program(**NO_CONTROL)
    basket = campaign(prog, id="basket", cooldown_days=7, trigger={
        "type": "checkout_abandoned", "after_hours": 2, "within_hours": 24})  # fmt: skip
    got = decisions(w, run(w, prog, [basket], at))
    assert {cid: row[:2] for (_, cid), row in got.items()} == {
        "WAITING": ("sent", "sent"),
        "ORDERED_SINCE": ("suppressed", "already ordered since the trigger"),
        "TWICE": ("sent", "sent"),
        "OPTED_OUT": ("suppressed", "no consent: opted out of marketing"),
    }
    occasion = w.con.execute("SELECT occasion FROM sends.decisions WHERE customer_id = 'TWICE'")
    assert occasion.fetchone()[0] == "TWICE-1"  # the latest checkout is the occasion
    again = decisions(w, run(w, prog, [basket], "2026-06-10T16:00:00Z"))  # an hour later
    assert again[("basket", "WAITING")][:2] == ("suppressed", "cool-down: received within 7 days")
