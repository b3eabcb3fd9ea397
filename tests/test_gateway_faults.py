"""Exactly once under the faults of a real send path: a real Kannel with fakesmsc as the
carrier, and between the sender and Kannel a ``FaultyFront`` (a test double for a network or
proxy that loses or replaces answers). Each test is one way a message could go out twice, stay
stuck, or a number be suppressed for our own fault."""

import contextlib
import json
import shutil
import time
from dataclasses import replace
from datetime import datetime, timedelta

import duckdb
import pytest
from conftest import SEND_AS_OF, running_clock
from kannel_helpers import (
    FaultyFront,
    carrier_codes,
    codes,
    settle,
    start_kannel,
    stop_kannel,
    wait_for,
)

from send_jobs import kannel_box, receipts
from send_jobs.campaign_specs import load_campaigns, load_program
from send_jobs.decide import decide
from send_jobs.deliver import deliver
from send_jobs.gateways import KannelGateway, OutboxGateway

AS_OF = datetime.fromisoformat(SEND_AS_OF.replace("Z", "+00:00"))
GRACE_S = 2.0


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    cfg, server = start_kannel(tmp_path_factory.mktemp("kannel"), port_base=23000)
    yield cfg, server
    stop_kannel(cfg, server)


@pytest.fixture
def kannel(gateway, tmp_path):
    cfg, server = gateway
    server.journal.root = tmp_path / "gateway"
    if not kannel_box.pid_of(cfg, "carrier"):
        kannel_box.up(cfg)  # a test that took the carrier link down failed part-way
    return cfg, server.journal.root


@pytest.fixture
def con(send_con):
    return send_con


@pytest.fixture
def front(kannel):
    fronts = []

    def make(fault):
        fronts.append(FaultyFront(kannel[0].sendsms_port, fault))
        return fronts[-1]

    yield make
    for f in fronts:
        f.close()


def through(cfg, front, **changes) -> KannelGateway:
    """The sender, talking to Kannel through ``front``."""
    return KannelGateway(
        replace(cfg, sendsms_port=front.port, **changes), load_program().sender,
        unknown_grace_s=GRACE_S,
    )  # fmt: skip


def queue_all(con) -> int:
    program = load_program()
    return decide(con, program, load_campaigns(program=program), AS_OF).counts["sent"]


def statuses(con) -> dict[str, int]:
    return dict(con.execute("SELECT status, count(*) FROM sends.messages GROUP BY 1").fetchall())


def carrier_settles(cfg) -> int:
    """How many messages the carrier has once its log stops growing."""
    seen = [-1]

    def quiet():
        now = len(carrier_codes(cfg))
        done = now == seen[0]
        seen[0] = now
        return done

    wait_for(quiet, timeout=30, step=1.0)
    return seen[0]


def all_delivered_once(cfg, landing, con, skip: int, n: int) -> None:
    """Every one of the ``n`` messages reached the carrier exactly once and its receipt
    finalised the ledger."""
    settle(cfg, landing, con, codes(con), skip)
    assert statuses(con) == {"delivered": n}
    assert carrier_settles(cfg) - skip == n
    each_once(cfg, con, skip)


def wait_past_grace(clock) -> None:
    """Until the grace has passed for everything handed over so far."""
    end = clock() + timedelta(seconds=GRACE_S + 0.5)
    assert wait_for(lambda: clock() > end, timeout=GRACE_S + 10)


def each_once(cfg, con, skip: int) -> None:
    got = carrier_codes(cfg)[skip:]
    assert sorted(got) == sorted(codes(con))


def test_a_full_journal_disk_stops_the_batch_and_keeps_every_answer(
    kannel, con, front, tmp_path, small_disk
):
    cfg, landing = kannel
    n = queue_all(con)
    skip = len(carrier_codes(cfg))
    sender_state = tmp_path / "sender"
    # room for the intents of the batch and some 60 answers: it fills up part-way through
    small_disk(sender_state / "journal", f"{(n * 62) // 1024 + 8}k")
    gateway = KannelGateway(replace(cfg, state=sender_state), load_program().sender)
    done = deliver(con, load_program(), AS_OF, gateway)
    assert done.halted and done.halted.startswith("journal:"), done
    assert "No space left on device" in done.halted
    got = carrier_settles(cfg) - skip
    now = statuses(con)
    assert 0 < got < n
    # every message Kannel took is recorded as handed over, the rest is queued: none waits
    assert now.get("submitted", 0) + now.get("accepted", 0) + now.get("delivered", 0) == got
    assert now.get("queued", 0) == n - got and "submitting" not in now
    again = deliver(con, load_program(), AS_OF, KannelGateway(cfg, load_program().sender))
    assert again.counts["submitted"] == n - got and not again.halted
    settle(cfg, landing, con, codes(con), skip)
    each_once(cfg, con, skip)


def test_the_grace_runs_from_each_messages_own_hand_over(kannel, con, front):
    """The last answers of a batch longer than the grace are lost: the next run waits for
    their receipts instead of sending them again."""
    cfg, landing = kannel
    n = queue_all(con)
    skip = len(carrier_codes(cfg))
    lossy = front(lambda i: "drop" if i >= n - 3 else None)
    gateway = through(cfg, lossy, rate_per_s=n / (2 * GRACE_S))  # the batch takes 2 graces
    clock = running_clock(AS_OF)
    first = deliver(con, load_program(), AS_OF, gateway, clock=clock)
    assert first.counts["unknown"] == 3 and first.counts["submitted"] == n - 3
    again = deliver(con, load_program(), AS_OF, gateway, clock=clock)
    # within their grace they wait; past it (a loaded machine) Kannel's record settles them:
    # either way none is queued again, as marking the batch long ago had them
    assert again.counts.get("requeued", 0) == 0 and again.counts["handed_over"] == 0
    assert not con.execute("SELECT count(*) FROM sends.messages WHERE status = 'queued'"
                           ).fetchone()[0]  # fmt: skip
    assert carrier_settles(cfg) - skip == n
    settle(cfg, landing, con, codes(con), skip)  # their receipts prove the sends
    assert statuses(con) == {"delivered": n}
    each_once(cfg, con, skip)


def test_a_5xx_after_kannel_queued_the_message_is_not_sent_again(kannel, con, front):
    cfg, landing = kannel
    n = queue_all(con)
    skip = len(carrier_codes(cfg))
    gateway = through(cfg, front(lambda i: ("after", 503) if i == 5 else None))
    done = deliver(con, load_program(), AS_OF, gateway, clock=running_clock(AS_OF))
    assert done.counts["unknown"] == 1 and done.counts["submitted"] == n - 1
    all_delivered_once(cfg, landing, con, skip, n)


def test_receipts_that_came_in_meanwhile_are_loaded_before_resolving(kannel, con, front):
    cfg, landing = kannel
    n = queue_all(con)
    skip = len(carrier_codes(cfg))
    gateway = through(cfg, front(lambda i: "drop" if i in (1, 2) else None))
    clock = running_clock(AS_OF)
    first = deliver(con, load_program(), AS_OF, gateway, clock=clock)
    assert first.counts["unknown"] == 2
    waiting = "SELECT message_id FROM sends.messages WHERE status = 'submitting'"
    lost = [m for (m,) in con.execute(waiting).fetchall()]

    def final_receipts_in():
        lines = [json.loads(x) for f in (landing / "receipts").glob("*.jsonl")
                 for x in f.read_text().splitlines()]  # fmt: skip
        return {r["id"] for r in lines if r["dlr"] == 1} >= set(lost)

    assert wait_for(final_receipts_in, timeout=30)
    wait_past_grace(clock)
    again = deliver(con, load_program(), AS_OF, gateway, clock=clock, replies=landing)
    assert again.counts.get("requeued", 0) == 0
    assert carrier_settles(cfg) - skip == n
    settle(cfg, landing, con, codes(con), skip)
    assert statuses(con) == {"delivered": n}
    each_once(cfg, con, skip)


def test_an_unanswered_message_kannel_sent_is_not_sent_again(kannel, con, front):
    """Answers lost and no receipt to prove the sends (as when smsbox dies holding them):
    Kannel's access log shows it handed them to the carrier, so they are not resent."""
    cfg, landing = kannel
    n = queue_all(con)
    skip = len(carrier_codes(cfg))
    gateway = through(cfg, front(lambda i: "drop" if i in (2, 3) else None))
    clock = running_clock(AS_OF)
    assert deliver(con, load_program(), AS_OF, gateway, clock=clock).counts["unknown"] == 2
    unanswered = con.execute("SELECT message_id FROM sends.messages WHERE status = 'submitting'")
    lost = [m for (m,) in unanswered.fetchall()]
    wait_past_grace(clock)
    again = deliver(con, load_program(), AS_OF, gateway, clock=clock)  # receipts not loaded
    assert again.counts.get("requeued", 0) == 0 and again.counts["handed_over"] == 0
    settled = con.execute(
        """SELECT DISTINCT m.status, e.source FROM sends.messages AS m
        JOIN sends.message_events AS e USING (message_id)
        WHERE message_id IN (SELECT unnest(?)) AND e.status = 'submitted'""",
        [lost],
    )
    assert settled.fetchall() == [("delivered", "kannel access log")]
    assert carrier_settles(cfg) - skip == n
    settle(cfg, landing, con, codes(con), skip)
    each_once(cfg, con, skip)


def test_receipts_lost_after_kannel_are_recovered_from_its_record(kannel, con):
    """Every receipt lost between Kannel and the ledger (a killed smsbox drops the callbacks
    it holds): the next delivery reads them from Kannel's access log."""
    cfg, _ = kannel
    n = queue_all(con)
    gateway = KannelGateway(cfg, load_program().sender, unknown_grace_s=GRACE_S)
    clock = running_clock(AS_OF)
    assert deliver(con, load_program(), AS_OF, gateway, clock=clock).counts["submitted"] == n
    wait_past_grace(clock)
    again = deliver(con, load_program(), AS_OF, gateway, clock=clock)  # the journal unread
    assert again.counts["receipts_from_kannel_log"] == n
    assert statuses(con) == {"delivered": n}


def test_messages_held_in_kannels_store_are_not_sent_again(kannel, con, front):
    """The carrier link is down: Kannel keeps what it accepted in its store. An answer lost
    on the way back is not resent while Kannel still holds messages."""
    cfg, landing = kannel
    n = queue_all(con)
    skip = len(carrier_codes(cfg))
    kannel_box.down(cfg, ("carrier",))
    gateway = through(cfg, front(lambda i: "drop" if i in (3, 4) else None))
    clock = running_clock(AS_OF)
    first = deliver(con, load_program(), AS_OF, gateway, clock=clock)
    assert first.counts["unknown"] == 2 and first.counts["submitted"] == n - 2
    wait_past_grace(clock)
    assert gateway.holds_messages() is True
    again = deliver(con, load_program(), AS_OF, gateway, clock=clock, replies=landing)
    assert again.counts.get("requeued", 0) == 0 and again.counts["awaiting_receipt"] == 2
    kannel_box.up(cfg)  # the link is back: the store goes out, once
    all_delivered_once(cfg, landing, con, skip, n)


def test_refused_credentials_or_throttling_keep_messages_queued(kannel, con, front):
    cfg, _ = kannel
    n = queue_all(con)
    program = load_program()
    wrong = KannelGateway(replace(cfg, sendsms_password="not-the-password"), program.sender)
    done = deliver(con, program, AS_OF, wrong)
    assert done.halted.startswith("auth:") and "403" in done.halted
    assert statuses(con) == {"queued": n}
    throttled = through(cfg, front(lambda i: ("instead", 429) if i >= 3 else None))
    done = deliver(con, program, AS_OF, throttled)
    assert done.halted.startswith("throttled:")
    assert statuses(con) == {"submitted": 3, "queued": n - 3} or "accepted" in statuses(con)
    failed = con.execute("SELECT count(*) FROM sends.messages WHERE recipient_failure").fetchone()
    assert failed[0] == 0
    # twice more with the wrong password: still nobody is suppressed
    for day in (1, 2):
        deliver(con, program, AS_OF, wrong)
        later = decide(con, program, load_campaigns(program=program), AS_OF + timedelta(days=day))
        reasons = con.execute("SELECT DISTINCT reason FROM sends.decisions WHERE run_id = ?",
                              [later.run_id]).fetchall()  # fmt: skip
        assert not any("hard failures" in r for (r,) in reasons)


def test_only_a_refusal_of_the_recipient_counts_against_the_number(kannel, con, front):
    cfg, _ = kannel
    queue_all(con)
    # the first message handed over (the front refuses the eighth request on its own)
    [(bad,)] = con.execute(
        "SELECT message_id FROM sends.messages ORDER BY as_of, message_id LIMIT 1"
    ).fetchall()
    con.execute("UPDATE sends.messages SET phone_e164 = 'not-a-number' WHERE message_id = ?",
                [bad])  # fmt: skip
    # consent follows the number: the customer opted this one in too, so it is handed over
    con.execute("""INSERT INTO raw.consent SELECT * REPLACE ('K-bad' AS consent_event_id,
        'not-a-number' AS phone_e164) FROM raw.consent WHERE channel = 'sms' AND customer_id =
        (SELECT customer_id FROM sends.messages WHERE message_id = ?)""", [bad])  # fmt: skip
    gateway = through(cfg, front(lambda i: ("instead", 400) if i == 7 else None))
    deliver(con, load_program(), AS_OF, gateway)
    rows = con.execute(
        """SELECT message_id = ? AS is_bad, status, recipient_failure, last_error
        FROM sends.messages WHERE status = 'rejected' ORDER BY is_bad""",
        [bad],
    ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [(False, "rejected", False),
                                                 (True, "rejected", True)]  # fmt: skip
    assert "denied" in rows[1][3]


def test_in_flight_messages_of_another_gateway_are_resolved(kannel, con, front, tmp_path):
    """Sent through Kannel with two answers lost, then the next runs use the outbox: the two
    are not left submitting for ever: a receipt settles them, or they end unconfirmed."""
    cfg, landing = kannel
    n = queue_all(con)
    gateway = through(cfg, front(lambda i: "drop" if i in (0, 1) else None))
    deliver(con, load_program(), AS_OF, gateway, clock=running_clock(AS_OF))
    assert statuses(con)["submitting"] == 2
    outbox = OutboxGateway(tmp_path / "outbox")
    later = AS_OF + timedelta(hours=73)
    done = deliver(con, load_program(), AS_OF, outbox, clock=lambda: later)
    assert done.counts["unconfirmed"] == n and done.counts["handed_over"] == 0
    assert statuses(con) == {"unconfirmed": n}
    assert wait_for(
        lambda: (
            receipts.ingest(con, landing)
            and not con.execute(
                "SELECT count(*) FROM sends.messages WHERE status <> 'delivered'"
            ).fetchone()[0]
        )
    )


@pytest.mark.slow
def test_a_stop_outlasts_a_full_disk_under_the_receiver(gateway, tmp_path, small_disk):
    """The receiver answers 503 while its disk is full; Kannel keeps retrying the STOP for
    longer than the old 20 s, so it lands once the disk has room again."""
    cfg, server = gateway
    root = small_disk(tmp_path / "disk", "16k")
    server.journal.root = root
    with open(root / "filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"x" * 512)
    started = time.monotonic()
    kannel_box.inject_reply(cfg, "+12125550199", "STOP", timeout=2)
    time.sleep(max(0.0, 25 - (time.monotonic() - started)))  # past the old retry budget

    def landed():
        lines = [line for p in root.glob("replies/*.jsonl") for line in p.read_text().splitlines()]
        return any(json.loads(line)["from"] == "+12125550199" for line in lines)

    assert not landed()
    (root / "filler").unlink()
    assert wait_for(landed, timeout=40)


def test_retentext_send_says_why_the_gateway_stopped(kannel, send_warehouse, tmp_path,
                                                      monkeypatch, capsys):  # fmt: skip
    from orchestration.cli import main

    cfg, _ = kannel
    warehouse = tmp_path / "cli.duckdb"
    shutil.copy(send_warehouse, warehouse)
    for name, value in {
        "RETENTEXT_LANDING": tmp_path / "landing", "RETENTEXT_KANNEL_STATE": tmp_path / "k",
        "RETENTEXT_KANNEL_BASE_PORT": cfg.admin_port, "RETENTEXT_RECEIVER_PORT": cfg.receiver_port,
        "RETENTEXT_KANNEL_ADMIN_PASSWORD": cfg.admin_password,
        "RETENTEXT_RECEIVER_SECRET": cfg.receiver_secret,
        "RETENTEXT_KANNEL_PASSWORD": "not-the-password",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, str(value))
    code = main(["send", "--as-of", SEND_AS_OF, "--handover-at", SEND_AS_OF,
                 "--warehouse", str(warehouse), "--gateway", "kannel"])  # fmt: skip
    out = capsys.readouterr()
    assert code == 1
    assert "stopped handing over (auth: Kannel refused our credentials" in " ".join(
        (out.out + out.err).split()
    )
    con = duckdb.connect(str(warehouse), read_only=True)
    assert con.execute("SELECT DISTINCT status FROM sends.messages").fetchall() == [("queued",)]
    con.close()
