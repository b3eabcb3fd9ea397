"""Two-way texts end to end on the simulated calendar, with real Kannel and fakesmsc: a booking
lands, `retentext run` builds it, the appointment reminder goes out through Kannel, the
customer replies "C" through the carrier link, the receiver journals it, the load records the
confirmation and queues its answer, the next delivery sends that answer once (a second "C"
sends nothing more), a "STOP" to the same question opts out, and the next `retentext run`
shows the appointment confirmed in the marts."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta

import duckdb
import pytest
from conftest import running_clock
from kannel_helpers import carrier_codes, start_kannel, stop_kannel, wait_for

from orchestration.cli import main
from send_jobs import kannel_box, receipts
from send_jobs.campaign_specs import load_campaigns, load_program
from send_jobs.decide import decide
from send_jobs.deliver import deliver
from send_jobs.gateways import KannelGateway

BOOKED = "2025-05-31T09:00:00Z"  # a day after the send world's last landing day
APPOINTMENT = "2025-06-01T14:00:00Z"
BUILT = "2025-06-01T00:00:00Z"
REMINDED = datetime.fromisoformat("2025-06-01T00:05:00+00:00")  # 20:05 in New York


@pytest.fixture
def gateway(tmp_path):
    cfg, server = start_kannel(tmp_path / "kannel", port_base=27000)
    server.journal.root = tmp_path / "landing" / "gateway"
    yield cfg, server
    stop_kannel(cfg, server)


def book(send_warehouse, tmp_path) -> tuple[str, str, str]:
    """The send world with one more landing day holding a New Yorker's booking; returns the
    warehouse, landing folder and customer's phone."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(send_warehouse, warehouse)
    landing = tmp_path / "landing"
    shutil.copytree(send_warehouse.parent / "landing", landing)
    con = duckdb.connect(str(warehouse), read_only=True)
    customer, phone = con.execute("""SELECT customer_id, phone_e164 FROM marts.dim_customers
        WHERE region = 'NY' AND time_zone = 'America/New_York'
          AND sms_transactional_status = 'opted_in' ORDER BY customer_id LIMIT 1""").fetchone()
    con.close()
    event = {"event_id": "E2E-BOOKING", "customer_id": customer,
             "event_type": "appointment_booked", "occurred_at": BOOKED,
             "provenance": "explicit", "channel": "web",
             "properties": {"appointment_at": APPOINTMENT, "store_id": "S1",
                            "store_name": "Northwind SoHo",
                            "checklist": ["bring your current products"]}}  # fmt: skip
    (landing / "events" / "2025-05-31.jsonl").write_text(json.dumps(event) + "\n")
    return str(warehouse), str(landing), phone


def to(cfg, phone: str) -> list[str]:
    return [text for number, text in carrier_codes(cfg) if number == phone]


@pytest.mark.slow
def test_c_confirms_once_and_stop_opts_out_through_kannel(send_warehouse, tmp_path, gateway):
    cfg, server = gateway
    warehouse, landing, phone = book(send_warehouse, tmp_path)
    assert main(["run", "--landing", landing, "--as-of", BUILT, "--warehouse", warehouse]) == 0
    program = load_program()
    reminder = [c for c in load_campaigns(program=program) if c.id == "appointment_reminder"]
    con = duckdb.connect(warehouse)
    clock = running_clock(REMINDED)
    server.clock = clock  # the receiver stamps replies on the same calendar
    sender = KannelGateway(cfg, program.sender)
    decide(con, program, reminder, REMINDED)
    assert deliver(con, program, REMINDED, sender, clock=clock).counts["submitted"] == 1
    assert wait_for(lambda: len(to(cfg, phone)) == 1)
    [text] = to(cfg, phone)
    assert "Northwind SoHo" in text and text.endswith("Reply C to confirm or R to reschedule.")

    journal = tmp_path / "landing" / "gateway"

    def load_replies(n: int) -> None:
        def loaded() -> bool:
            receipts.ingest(con, journal)
            return con.execute("SELECT count(*) FROM sends.inbound").fetchone()[0] == n

        assert wait_for(loaded)

    kannel_box.inject_reply(cfg, phone, "C", timeout=3)
    load_replies(1)
    assert con.execute("SELECT action, occasion FROM sends.reply_actions").fetchall() == [
        ("confirmed", "E2E-BOOKING")
    ]
    later = clock()
    assert deliver(con, program, later, sender, clock=clock).counts["submitted"] == 1
    confirmation = "Northwind Goods: Thank you, your appointment is confirmed. See you soon!"
    assert wait_for(lambda: len(to(cfg, phone)) == 2)
    kannel_box.inject_reply(cfg, phone, "c", timeout=3)  # the same answer again
    load_replies(2)
    assert deliver(con, program, clock(), sender, clock=clock).counts["handed_over"] == 0
    stop = kannel_box.inject_reply(cfg, phone, "STOP", timeout=10)
    assert stop.startswith("Northwind Goods: You are unsubscribed")
    load_replies(3)
    assert con.execute("SELECT count(*) FROM sends.reply_actions").fetchone()[0] == 2
    stopped = con.execute("SELECT intent, action FROM sends.inbound WHERE text = 'STOP'")
    assert stopped.fetchall() == [("opt_out", "opt_out")]
    con.close()
    assert to(cfg, phone) == [text, confirmation]  # the answer went out once
    rebuilt = (REMINDED + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert main(["run", "--landing", landing, "--as-of", rebuilt, "--warehouse", warehouse]) == 0
    con = duckdb.connect(warehouse, read_only=True)
    assert con.execute(
        """SELECT customer_id = (SELECT customer_id FROM marts.dim_customers
            WHERE phone_e164 = ?), reply_status FROM marts.fct_appointments
        WHERE appointment_id = 'E2E-BOOKING'""",
        [phone],
    ).fetchall() == [(True, "confirmed")]
    replies = con.execute("""SELECT count(*) FROM marts.fct_events
        WHERE event_type = 'sms_reply' AND properties::JSON->>'action' = 'confirmed'""")
    assert replies.fetchone()[0] == 2  # both Cs are events; the first set the status
    assert con.execute(
        """SELECT sms_transactional_status FROM marts.dim_customers
        WHERE phone_e164 = ?""",
        [phone],
    ).fetchone() == ("opted_out",)
    con.close()
