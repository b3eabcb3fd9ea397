"""A real carrier's protocol: Kannel bound over SMPP (``carrier_smpp.conf``) to an SMSC test
double (``smsc_double.SmscDouble``). Messages are submitted once each, delivery receipts that
come back as deliver_sm finalise the ledger (also after a bearerbox restart between the submit
and the receipt: the DLR mappings are kept in SQLite), and a STOP sent over SMPP becomes an
opt-out before the next send."""

from datetime import UTC, datetime, timedelta

import pytest
from conftest import running_clock
from kannel_helpers import start_kannel, stop_kannel, wait_for
from mini_warehouse import MiniWarehouse, campaign, program, utc
from smsc_double import SmscDouble

from send_jobs import kannel_box, receipts
from send_jobs.decide import decide
from send_jobs.deliver import deliver
from send_jobs.gateways import KannelGateway

AT = utc("2026-06-10T15:00:00Z")  # 11:00 in New York


@pytest.fixture
def smpp(tmp_path):
    smsc = SmscDouble("retentext", 'car"pass')
    cfg, server = start_kannel(
        tmp_path / "kannel", port_base=27000, carrier="smpp", smpp_port=smsc.port,
        smpp_system_id="retentext", smpp_password='car"pass', smpp_throughput=500,
    )  # fmt: skip
    server.journal.root = tmp_path / "gateway"
    yield cfg, server.journal.root, smsc
    stop_kannel(cfg, server)
    smsc.close()


def ledger(w) -> dict[str, int]:
    return dict(w.con.execute("SELECT status, count(*) FROM sends.messages GROUP BY 1").fetchall())


def send(w, cfg, prog, at) -> int:
    decide(w.con, prog, [campaign(prog)], at)
    done = deliver(w.con, prog, at, KannelGateway(cfg, prog.sender), clock=running_clock(at))
    return done.counts.get("submitted", 0)


def sent_to(tmp_path, cfg, smsc, phones: list[str]):
    """A warehouse with one customer per phone, each sent one message over SMPP."""
    w = MiniWarehouse(tmp_path / "w.duckdb")
    for i, phone in enumerate(phones):
        w.customer(f"C{i}", phone=phone)
    prog = program(global_control_share=0.0)
    assert send(w, cfg, prog, AT) == len(phones)
    assert wait_for(lambda: len(smsc.submitted) == len(phones), timeout=30)
    return w, prog


def receipts_final(w, landing) -> bool:
    receipts.ingest(w.con, landing)
    return set(ledger(w)) == {"delivered"}


def test_submit_receipts_and_a_stop_over_smpp(smpp, tmp_path):
    cfg, landing, smsc = smpp
    w, prog = sent_to(tmp_path, cfg, smsc, [f"+1212555010{i}" for i in range(5)])
    sent = {(p.lstrip("+"), t) for p, t in w.con.execute(
        "SELECT phone_e164, text FROM sends.messages").fetchall()}  # fmt: skip
    assert {(m.destination.lstrip("+"), m.text) for m in smsc.submitted} == sent
    assert all(m.registered_delivery for m in smsc.submitted)  # receipts were asked for
    assert smsc.send_receipts() == 5
    assert wait_for(lambda: receipts_final(w, landing), timeout=30), ledger(w)

    smsc.send_reply("12125550103", prog.sender, "STOP")
    opted_out = "SELECT count(*) FROM sends.inbound WHERE action = 'opt_out'"
    assert wait_for(lambda: receipts.ingest(w.con, landing)
                    and w.con.execute(opted_out).fetchone()[0], timeout=30)  # fmt: skip
    assert w.con.execute("SELECT phone_e164 FROM sends.inbound").fetchall() == [("+12125550103",)]
    # a reply takes effect when the receiver got it: the next run is stamped after that
    now = datetime.now(UTC) + timedelta(seconds=1)
    later = decide(w.con, prog, [campaign(prog, id="next")], now, dry_run=True)
    reasons = dict(w.con.execute(
        "SELECT customer_id, reason FROM sends.decisions WHERE run_id = ?", [later.run_id]
    ).fetchall())  # fmt: skip
    assert reasons["C3"] == "no consent: opted out of marketing"
    assert smsc.binds == 1


def test_receipts_after_a_bearerbox_restart_still_find_their_messages(smpp, tmp_path):
    cfg, landing, smsc = smpp
    w, _ = sent_to(tmp_path, cfg, smsc, [f"+1212555020{i}" for i in range(4)])
    kannel_box.down(cfg)  # the receipts are still with the carrier
    kannel_box.up(cfg)
    assert wait_for(lambda: smsc.binds == 2 and smsc.session is not None, timeout=30)
    assert smsc.send_receipts() == 4
    assert wait_for(lambda: receipts_final(w, landing), timeout=30), ledger(w)
