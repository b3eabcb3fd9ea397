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


class ReceiptingOutbox(OutboxGateway):
    """Test double of a fast carrier: the outbox, plus a delivered receipt for every message
    in the receiver's journal as soon as the chunk is written, before the delivery records
    the chunk's answers."""

    def __init__(self, folder, landing) -> None:
        super().__init__(folder)
        self.journal = Journal(landing)

    def submit(self, batch, batch_id, clock):
        answers = super().submit(batch, batch_id, clock)
        for message_id, *_ in answers:
            receipt = {"id": message_id, "dlr": 1, "at": None, "smsc": "fake", "reply": None,
                       "received_at": "2026-06-10T00:31:00.000000Z"}  # fmt: skip
            self.journal.append("receipts", receipt)
        return answers


def test_a_receipt_loaded_before_its_answer_keeps_the_hand_over_time(tmp_path):
    """Chunk N's answers are recorded while chunk N+1 is in flight, after N+1's judging has
    loaded the receipts: the message is delivered and still says when it was handed over."""
    w = MiniWarehouse(tmp_path / "w.duckdb")
    for i in range(6):
        w.customer(f"C{i}", phone=f"+1212555010{i}", where=NY)
    prog = program(**NO_CONTROL)
    decide(w.con, prog, [campaign(prog)], DECIDED)
    landing = tmp_path / "gateway"
    handover = DECIDED + timedelta(minutes=5)
    done = deliver(w.con, prog, DECIDED, ReceiptingOutbox(tmp_path / "out", landing),
                   clock=lambda: handover, replies=landing, chunk_size=2)  # fmt: skip
    assert done.counts["handed_over"] == 6 and done.counts["submitted"] == 6
    rows = w.con.execute("SELECT status, handed_over_at FROM sends.messages").fetchall()
    early = [s for s, _ in rows if s == "delivered"]
    assert len(early) >= 4  # the receipts of the first chunks were loaded by the next ones
    assert {at for _, at in rows} == {handover.replace(tzinfo=None)}
