"""Consent and the local window are judged when a message is handed to the gateway (a clock
passed in by the caller), with the replies that reached the receiver up to then."""

from datetime import timedelta

from mini_warehouse import NY, MiniWarehouse, campaign, program, utc

from send_jobs.decide import decide
from send_jobs.deliver import deliver
from send_jobs.gateways import OutboxGateway
from send_jobs.receiver import Journal

NO_CONTROL = {"global_control_share": 0.0}
DECIDED = utc("2026-06-10T00:30:00Z")  # 20:30 in New York: inside the 8-21 window


def statuses(w) -> dict[str, str]:
    return dict(w.con.execute("SELECT customer_id, status FROM sends.messages").fetchall())


def test_a_window_that_closed_before_hand_over_defers_the_message(tmp_path):
    w = MiniWarehouse(tmp_path / "w.duckdb")
    w.customer("C1", where=NY)
    prog = program(**NO_CONTROL)
    assert decide(w.con, prog, [campaign(prog)], DECIDED).counts == {"sent": 1}
    late = DECIDED + timedelta(minutes=45)  # the run was handed over at 21:15 local
    done = deliver(w.con, prog, DECIDED, OutboxGateway(tmp_path / "out"), clock=lambda: late)
    assert done.counts["handed_over"] == 0 and done.counts["waiting_for_window"] == 1
    assert statuses(w) == {"C1": "queued"}
    morning = DECIDED + timedelta(hours=13)  # 09:30 the next day: the window is open again
    again = deliver(w.con, prog, DECIDED, OutboxGateway(tmp_path / "out"), clock=lambda: morning)
    assert again.counts["handed_over"] == 1


def test_a_stop_that_reached_the_receiver_before_hand_over_cancels(tmp_path):
    w = MiniWarehouse(tmp_path / "w.duckdb")
    w.customer("C1", phone="+12125550101", where=NY)
    w.customer("C2", phone="+12125550102", where=NY)
    prog = program(**NO_CONTROL)
    assert decide(w.con, prog, [campaign(prog)], DECIDED).counts == {"sent": 2}
    landing = tmp_path / "gateway"
    stop_at = DECIDED + timedelta(minutes=10)
    Journal(landing).append(
        "replies",
        {"inbound_id": "a" * 32, "from": "+12125550101", "text": "stop please",
         "intent": "opt_out", "action": "opt_out", "flagged": False, "rule": "command",
         "received_at": stop_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
    )  # fmt: skip
    handover = DECIDED + timedelta(minutes=20)
    done = deliver(
        w.con, prog, DECIDED, OutboxGateway(tmp_path / "out"),
        clock=lambda: handover, replies=landing,
    )  # fmt: skip
    assert done.counts["replies_loaded"] == 1
    assert statuses(w) == {"C1": "cancelled", "C2": "submitted"}


def test_each_chunk_is_judged_at_its_own_moment(tmp_path):
    """A long hand-over: the clock moves past the window's end between two chunks."""
    w = MiniWarehouse(tmp_path / "w.duckdb")
    for i in range(4):
        w.customer(f"C{i}", where=NY)
    prog = program(**NO_CONTROL)
    decide(w.con, prog, [campaign(prog)], DECIDED)
    out = tmp_path / "out"

    def clock():  # 20:59 local until the first chunk is written, then 21:01
        written = out.exists() and any(out.glob("*.manifest.json"))
        return DECIDED + timedelta(minutes=31 if written else 29)

    done = deliver(w.con, prog, DECIDED, OutboxGateway(out), clock=clock, chunk_size=2)
    assert done.counts["handed_over"] == 2  # 20:59 local: two go; 21:01: the rest wait
    assert sorted(statuses(w).values()) == ["queued", "queued", "submitted", "submitted"]
