"""Against a real Kannel (bearerbox + smsbox) with fakesmsc as the carrier, on loopback: every
message reaches the carrier exactly once, DLRs finalise the ledger, a STOP reply becomes an
opt-out, and a gateway stopped mid-batch leaves the rest queued for the next run."""

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from conftest import SEND_AS_OF, running_clock
from kannel_helpers import carrier_codes, codes, settle, start_kannel, stop_kannel, wait_for
from mini_warehouse import MiniWarehouse, campaign, program

from send_jobs import kannel_box, receipts
from send_jobs.campaign_specs import load_campaigns, load_program
from send_jobs.decide import decide
from send_jobs.deliver import deliver
from send_jobs.gateways import KannelGateway

AS_OF = datetime.fromisoformat(SEND_AS_OF.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    cfg, server = start_kannel(tmp_path_factory.mktemp("kannel"))
    yield cfg, server
    stop_kannel(cfg, server)


@pytest.fixture
def kannel(gateway, tmp_path):
    """The module's gateway, with the receiver writing into this test's own landing."""
    cfg, server = gateway
    server.journal.root = tmp_path / "gateway"
    return cfg, server.journal.root


@pytest.fixture
def con(send_con):
    return send_con


def test_each_message_reaches_the_carrier_once_and_dlrs_finalise_the_ledger(kannel, con):
    cfg, landing = kannel
    program = load_program()
    gateway = KannelGateway(cfg, program.sender)
    before = carrier_codes(cfg)
    run = decide(con, program, load_campaigns(program=program), AS_OF)
    done = deliver(con, program, AS_OF, gateway)
    n = run.counts["sent"]
    assert n > 50 and done.counts["submitted"] == n
    sent = codes(con)
    settle(cfg, landing, con, sent, len(before))
    got = carrier_codes(cfg)[len(before) :]  # the carrier log only grows
    assert sorted(got) == sorted(sent)  # exactly N, each once
    statuses = dict(
        con.execute("SELECT status, count(*) FROM sends.messages GROUP BY 1").fetchall()
    )
    assert statuses == {"delivered": n}
    history = con.execute("""SELECT list(status ORDER BY rowid) FROM sends.message_events
        GROUP BY message_id""").fetchall()
    for (steps,) in history:  # DLR 8 (accepted) may be overtaken by DLR 1 (delivered)
        assert steps[:3] == ["queued", "submitting", "submitted"] and steps[-1] == "delivered"
    assert any(not t.isascii() for _, t in got)  # accents and emoji arrive intact
    # the same run again: nothing new reaches the carrier
    assert decide(con, program, load_campaigns(program=program), AS_OF).resumed
    assert deliver(con, program, AS_OF, gateway).counts["handed_over"] == 0
    time.sleep(1)
    assert len(carrier_codes(cfg)) == len(before) + n


def test_a_stop_reply_becomes_an_opt_out_before_the_next_send(kannel, tmp_path):
    cfg, landing = kannel
    w = MiniWarehouse(tmp_path / "w.duckdb")
    w.customer("C1", phone="+12125550142")
    w.customer("C2", phone="+12125550143")
    prog = program(global_control_share=0.0)
    camps = [campaign(prog), campaign(prog, id="service", category="transactional", priority=1)]
    # replies take effect when the receiver got them, so this test's runs are stamped with
    # the wall clock here (the send logic itself never reads it)
    before = decide(w.con, prog, camps, datetime.now(UTC), dry_run=True)
    assert {r[0] for r in w.con.execute(
        "SELECT reason FROM sends.decisions WHERE run_id = ?", [before.run_id]).fetchall()
    }.isdisjoint({"no consent: opted out of marketing"})  # fmt: skip
    reply = kannel_box.inject_reply(cfg, "+12125550142", "STOP")
    assert reply.startswith("Northwind Goods: You are unsubscribed")
    assert "STOP" not in reply and "%" not in reply  # a confirmation, no marketing
    assert wait_for(
        lambda: (
            receipts.ingest(w.con, landing)["replies"] > 0
            or w.con.execute(
                "SELECT count(*) FROM sends.inbound WHERE phone_e164 = '+12125550142'"
            ).fetchone()[0]
        )
    )
    assert w.con.execute(
        "SELECT intent, action, flagged FROM sends.inbound WHERE phone_e164 = '+12125550142'"
    ).fetchall() == [("opt_out", "opt_out", False)]
    after = decide(w.con, prog, camps, datetime.now(UTC) + timedelta(seconds=1))
    rows = dict(w.con.execute(
        "SELECT campaign_id, reason FROM sends.decisions WHERE run_id = ? AND customer_id = 'C1'",
        [after.run_id]).fetchall())  # fmt: skip
    assert rows == {
        "promo": "no consent: opted out of marketing",
        "service": "no consent: opted out of transactional",
    }
    assert not w.con.execute(
        "SELECT count(*) FROM sends.messages WHERE phone_e164 = '+12125550142'"
    ).fetchone()[0]
    # the other subscriber is unaffected (sent, or deferred by the hour of the day)
    other = w.con.execute(
        "SELECT outcome FROM sends.decisions WHERE run_id = ? AND customer_id = 'C2' "
        "AND campaign_id = 'service'", [after.run_id]).fetchone()[0]  # fmt: skip
    assert other in ("sent", "deferred")


def test_gateway_stopped_mid_batch_leaves_the_rest_queued(kannel, con):
    cfg, landing = kannel
    program = load_program()
    slow = replace(cfg, rate_per_s=150, max_attempts=2)  # slow enough to stop part-way
    gateway = KannelGateway(slow, program.sender, unknown_grace_s=2.0)
    before = carrier_codes(cfg)
    run = decide(con, program, load_campaigns(program=program), AS_OF)
    n = run.counts["sent"]

    def stop_after_some():
        wait_for(lambda: len(carrier_codes(cfg)) >= len(before) + n // 3, timeout=30, step=0.05)
        kannel_box.down(cfg, ("smsbox", "bearerbox"))

    stopper = threading.Thread(target=stop_after_some)
    stopper.start()
    clock = running_clock(AS_OF)
    first = deliver(con, program, AS_OF, gateway, clock=clock, replies=landing)
    stopper.join()
    assert first.counts.get("retry", 0) > 0 and first.halted.startswith("unreachable"), first
    queued = con.execute("SELECT count(*) FROM sends.messages WHERE status = 'queued'").fetchone()
    assert queued[0] == first.counts["retry"]
    kannel_box.down(cfg)  # the carrier lost its link; start everything again
    kannel_box.up(cfg)
    # messages Kannel accepted before it stopped are kept in its store and go out now; the
    # next runs send the rest (an unanswered one once its grace has passed)
    for _ in range(20):
        second = deliver(con, program, AS_OF, gateway, clock=clock, replies=landing)
        if not con.execute("SELECT count(*) FROM sends.messages "
                           "WHERE status IN ('queued', 'submitting')").fetchone()[0]:  # fmt: skip
            break
        time.sleep(1)
    assert second.counts.get("awaiting_receipt", 0) == 0, second.counts
    sent = codes(con)
    settle(cfg, landing, con, sent, len(before))
    got = carrier_codes(cfg)[len(before) :]  # the carrier log only grows
    assert sorted(got) == sorted(sent)  # each message exactly once across the restart
    assert len(sent) == n
    assert (
        con.execute("SELECT count(*) FROM sends.messages WHERE status <> 'delivered'").fetchone()[0]
        == 0
    )
