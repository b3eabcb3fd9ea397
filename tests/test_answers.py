"""Two-way texts on hand-made warehouses: a question's options, replies matched to the last
open question through the real receiver, the state recorded and each answer queued once,
consent keywords keeping their meaning, and the inbox for what no option explains."""

from __future__ import annotations

import http.client
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from mini_warehouse import MiniWarehouse, campaign, program, utc

from send_jobs import receipts
from send_jobs.campaign_specs import CampaignError
from send_jobs.decide import decide
from send_jobs.deliver import deliver
from send_jobs.gateways import OutboxGateway
from send_jobs.receiver import make_server, serving

AT = "2026-06-10T15:00:00Z"  # 11:00 in New York
SECRET = "receiver-test"
OPTIONS = {
    "valid_hours": 24,
    "options": [
        {"reply": "C", "also": ["CONFIRM"], "action": "confirmed",
         "answer": "Thank you, your appointment is confirmed."},
        {"reply": "R", "action": "reschedule_requested",
         "answer": "We will call you to find a new time."},
    ],
}  # fmt: skip


def reminder(prog, **fields):
    return campaign(prog, **{
        "id": "reminder", "category": "transactional", "priority": 1,
        "trigger": {"type": "appointment_booked"}, "reply_options": OPTIONS,
        "variants": [{"id": "v1", "template":
                      "See you at {{ store_name }}. Reply C to confirm or R to reschedule."}],
        **fields})  # fmt: skip


def receiver(tmp_path, at):
    """The real receiver in this process, stamping replies with the simulated time ``at[0]``."""
    return serving(
        make_server(0, SECRET, tmp_path / "gateway", "Northwind Goods", clock=lambda: at[0])
    )


def reply(server, phone: str, text: str, at: list | None = None) -> str:
    """A reply (MO) as Kannel's get-url delivers it, a minute after the last one when the
    receiver's clock ``at`` is given; returns the receiver's answer body."""
    if at is not None:
        at[0] += timedelta(minutes=1)
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    conn.request("GET", "/mo?" + urlencode({"k": SECRET, "from": phone, "text": text}))
    answer = conn.getresponse()
    body = answer.read().decode()
    conn.close()
    assert answer.status == 200
    return body


def world(tmp_path, *customers):
    w = MiniWarehouse(tmp_path / "w.duckdb")
    prog = program(global_control_share=0.0)
    for i, cid in enumerate(customers):
        w.customer(cid, phone=f"+1212555{i:04d}")
        w.booking(cid, f"B-{cid}", "2026-06-11T14:00:00Z", "2026-06-01T10:00:00Z")
    return w, prog


def reminded(tmp_path, *customers):
    """``world`` after the reminder's run at AT went out through the outbox."""
    w, prog = world(tmp_path, *customers)
    decide(w.con, prog, [reminder(prog)], utc(AT))
    deliver(w.con, prog, utc(AT), OutboxGateway(tmp_path / "out"))
    return w, prog


def actions(w) -> list[tuple]:
    return w.con.execute("""SELECT customer_id, occasion, action, reply FROM sends.reply_actions
        ORDER BY occurred_at, inbound_id""").fetchall()


def answers(w) -> list[tuple]:
    return w.con.execute("""SELECT customer_id, text, status FROM sends.messages
        WHERE run_id = 'answers' ORDER BY as_of""").fetchall()


def test_a_consent_keyword_is_never_an_answer_option():
    prog = program()
    stop = {"options": [{"reply": "STOP", "action": "cancelled", "answer": "Cancelled."}]}
    with pytest.raises(CampaignError, match="'STOP' is a consent keyword"):
        reminder(prog, reply_options=stop)
    arret = {"options": [{"reply": "Y", "also": ["arrêt"], "action": "x", "answer": "ok"}]}
    with pytest.raises(CampaignError, match="'arrêt' is a consent keyword"):
        reminder(prog, reply_options=arret)
    twice = {"options": [{"reply": "C", "action": "a", "answer": "A."},
                         {"reply": "c.", "action": "b", "answer": "B."}]}  # fmt: skip
    with pytest.raises(CampaignError, match="answers another option too"):
        reminder(prog, reply_options=twice)
    yes = {"options": [{"reply": "YES", "action": "reserved", "answer": "Reserved for you."}]}
    assert reminder(prog, reply_options=yes).reply_options[0].words == ("YES",)


def test_replies_record_the_state_and_queue_each_answer_once(tmp_path):
    w, prog = reminded(tmp_path, "C1", "C2")
    at = [utc(AT) + timedelta(hours=1)]
    with receiver(tmp_path, at) as server:
        assert reply(server, "+12125550000", " c. ", at) == ""  # no inline answer: queued
        reply(server, "+12125550000", "CONFIRM", at)  # the same answer again
        reply(server, "+12125550000", "Thanks, see you tomorrow!", at)  # no option: the inbox
        reply(server, "+12125550001", "R", at)
    counts = receipts.ingest(w.con, tmp_path / "gateway")
    assert (counts["answers_recorded"], counts["answers_queued"]) == (3, 2)
    assert actions(w) == [("C1", "B-C1", "confirmed", " c. "),
                          ("C1", "B-C1", "confirmed", "CONFIRM"),
                          ("C2", "B-C2", "reschedule_requested", "R")]  # fmt: skip
    assert answers(w) == [
        ("C1", "Northwind Goods: Thank you, your appointment is confirmed.", "queued"),
        ("C2", "Northwind Goods: We will call you to find a new time.", "queued"),
    ]
    inbox = w.con.execute("SELECT text, why, last_campaign FROM sends.inbox").fetchall()
    why = "matches no option of an open question"
    assert inbox == [("Thanks, see you tomorrow!", why, "reminder")]
    # the next delivery hands the answers over, once; loading again queues nothing new
    done = deliver(w.con, prog, at[0] + timedelta(minutes=5), OutboxGateway(tmp_path / "out"))
    assert done.counts["submitted"] == 2
    again = receipts.ingest(w.con, tmp_path / "gateway")
    assert again["answers_queued"] == 0 and again["lines"] == 0


def test_stop_to_a_question_opts_out_and_answers_nothing(tmp_path):
    w, prog = reminded(tmp_path, "C1")
    at = [utc(AT) + timedelta(hours=1)]
    with receiver(tmp_path, at) as server:
        stop = reply(server, "+12125550000", "STOP", at)
        assert stop.startswith("Northwind Goods: You are unsub")
        reply(server, "+12125550000", "YES", at)  # an option word of no question: not consent
    counts = receipts.ingest(w.con, tmp_path / "gateway")
    assert counts["answers_recorded"] == 0 and answers(w) == []
    inbound = w.con.execute("SELECT intent, action FROM sends.inbound ORDER BY received_at")
    assert inbound.fetchall() == [("opt_out", "opt_out"), ("yes", None)]
    later = decide(w.con, prog, [reminder(prog, id="again")], utc(AT) + timedelta(hours=2))
    reasons = w.con.execute("SELECT reason FROM sends.decisions WHERE run_id = ?", [later.run_id])
    assert reasons.fetchall() == [("no consent: opted out of transactional",)]


def test_a_reply_answers_the_last_open_question_only(tmp_path):
    w, prog = world(tmp_path, "C1")
    first = reminder(prog)
    decide(w.con, prog, [first], utc(AT))
    deliver(w.con, prog, utc(AT), OutboxGateway(tmp_path / "out"))
    offer = campaign(prog, id="offer", category="transactional", priority=2, reply_options={
        "valid_hours": 2, "options": [{"reply": "YES", "action": "reserved",
                                       "answer": "Reserved for you."}]})  # fmt: skip
    later = utc(AT) + timedelta(hours=3)
    decide(w.con, prog, [offer], later)
    deliver(w.con, prog, later, OutboxGateway(tmp_path / "out"))
    at = [later + timedelta(hours=1)]
    with receiver(tmp_path, at) as server:
        reply(server, "+12125550000", "C")  # the offer is the last question: C is no option
        reply(server, "+12125550000", "yes")  # answers the offer
        at[0] = later + timedelta(hours=2, minutes=1)  # the offer has closed, the reminder not
        reply(server, "+12125550000", "C")
        at[0] = utc(AT) + timedelta(hours=24, minutes=1)  # the reminder has closed too
        reply(server, "+12125550000", "R")
    receipts.ingest(w.con, tmp_path / "gateway")
    assert [(a[1], a[2]) for a in actions(w)] == [("offer", "reserved"), ("B-C1", "confirmed")]
    assert sorted(r[0] for r in w.con.execute("SELECT text FROM sends.inbox").fetchall()) == [
        "C", "R"]  # fmt: skip


def test_the_overview_lists_the_replies_for_a_person(tmp_path):
    from experiments.reports import write_reports

    w, prog = reminded(tmp_path, "C1")
    at = [utc(AT) + timedelta(hours=1)]
    with receiver(tmp_path, at) as server:
        reply(server, "+12125550000", "<b>Can I bring my dog?</b>", at)
        reply(server, "+12125550000", "C", at)  # answers the question: not for a person
    receipts.ingest(w.con, tmp_path / "gateway")
    html = write_reports(w.con, tmp_path / "reports", "now")["overview"].read_text()
    table = html[html.index("<table data-inbox>") :]
    assert "&lt;b&gt;Can I bring my dog?&lt;/b&gt;" in table  # the words, as text
    assert "…0000" in table and "+12125550000" not in html
    assert "matches no option of an open question" in table and "<td>reminder</td>" in table
    assert table.count("<tr>") == 2  # the header and the one reply
