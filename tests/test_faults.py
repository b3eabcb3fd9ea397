"""Faults outside the gateway: the warehouse locked by another writer, and a full disk under
the outbox. Each gives a clear error, leaves nothing half-written, and the next run sends
every message exactly once."""

import json
import os
import shutil
import subprocess
import time

import duckdb
import pytest
from conftest import SEND_AS_OF, port_range_start

from benchmarks.fault_trials import writer_lock_held
from orchestration.cli import main


@pytest.fixture
def warehouse(send_warehouse, tmp_path, monkeypatch):
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(send_warehouse, path)
    monkeypatch.setenv("RETENTEXT_LANDING", str(tmp_path / "landing"))
    return path


def send(warehouse) -> int:
    """`retentext send` replaying the send world's run: hand-over at the run's own time."""
    return main(["send", "--as-of", SEND_AS_OF, "--handover-at", SEND_AS_OF,
                 "--warehouse", str(warehouse)])  # fmt: skip


def test_a_locked_warehouse_is_a_clear_error_and_changes_nothing(warehouse, capsys):
    with writer_lock_held(warehouse):
        code = send(warehouse)
        err = capsys.readouterr().err
    assert code == 2
    assert "is in use by another process" in err and "nothing was read or changed" in err
    con = duckdb.connect(str(warehouse), read_only=True)
    schemas = {r[0] for r in con.execute("SELECT schema_name FROM duckdb_schemas()").fetchall()}
    assert "sends" not in schemas


def test_a_full_disk_under_the_outbox_leaves_nothing_half_written(warehouse, tmp_path, capsys,
                                                                  monkeypatch):  # fmt: skip
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(small)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        monkeypatch.setenv("RETENTEXT_OUTBOX", str(small))
        code = send(warehouse)
        err = capsys.readouterr().err
        assert code == 1
        assert "the outbox gateway failed" in err and "No space left on device" in err
        assert os.listdir(small) == []  # no partial batch, no temporary file
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(small)]).returncode == 0:
                break
            time.sleep(0.1)
    con = duckdb.connect(str(warehouse), read_only=True)
    queued = con.execute("SELECT count(*) FROM sends.messages").fetchone()[0]
    assert queued > 50
    con.close()
    outbox = tmp_path / "outbox"
    monkeypatch.setenv("RETENTEXT_OUTBOX", str(outbox))
    assert send(warehouse) == 0
    [manifest] = [json.loads(p.read_text()) for p in outbox.glob("*.manifest.json")]
    assert manifest["count"] == queued
    lines = (outbox / manifest["file"]).read_text().splitlines()
    ids = [json.loads(x)["message_id"] for x in lines]
    assert len(ids) == len(set(ids)) == queued


def test_an_unreachable_gateway_leaves_every_message_queued_quickly(warehouse, tmp_path):
    from datetime import datetime

    from send_jobs import kannel_box
    from send_jobs.campaign_specs import load_campaigns, load_program
    from send_jobs.config import KannelConfig
    from send_jobs.decide import decide
    from send_jobs.deliver import deliver
    from send_jobs.gateways import KannelGateway

    program = load_program()
    as_of = datetime.fromisoformat(SEND_AS_OF.replace("Z", "+00:00"))
    con = duckdb.connect(str(warehouse))
    run = decide(con, program, load_campaigns(program=program), as_of)
    nobody = KannelConfig.from_env({}).on_ports(
        tmp_path / "k", kannel_box.free_base_port(port_range_start(45000))
    )
    started = time.monotonic()
    done = deliver(con, program, as_of, KannelGateway(nobody, program.sender))
    assert time.monotonic() - started < 30  # no per-message backoff once it is known down
    assert done.counts["retry"] == run.counts["sent"]
    statuses = con.execute("SELECT DISTINCT status FROM sends.messages").fetchall()
    assert statuses == [("queued",)]


def test_a_receipt_lost_inside_the_gateway_ends_unconfirmed_not_pending(tmp_path):
    from datetime import datetime

    from send_jobs import receipts
    from send_jobs.campaign_specs import load_program
    from send_jobs.config import KannelConfig
    from send_jobs.deliver import deliver
    from send_jobs.gateways import KannelGateway
    from send_jobs.ledger import ensure_schema

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_schema(con)
    for mid, age in (("00000000000000a1", "4 days"), ("00000000000000a2", "1 hour")):
        con.execute(
            f"INSERT INTO sends.messages VALUES (?, ?, 'r', '2026-01-01', 'c', 'marketing', "
            f"'C', '+12125550100', 'US', 'NY', 'America/New_York', 't', 'GSM-7', 1, 0.01, "
            f"'submitted', TIMESTAMP '2026-01-05 15:00' - INTERVAL {age}, 1, 'kannel', 'b', "
            f"NULL, TIMESTAMP '2026-01-05 15:00' - INTERVAL {age}, NULL, NULL, NULL)",
            [mid, mid],
        )
    for schema in ("marts", "raw"):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.execute("CREATE TABLE raw.consent (customer_id VARCHAR, phone_e164 VARCHAR, "
                "channel VARCHAR, category VARCHAR, action VARCHAR, "
                "occurred_at TIMESTAMP)")  # fmt: skip
    program = load_program()
    cfg = KannelConfig.from_env({}).on_ports(tmp_path / "k", 45100)
    done = deliver(con, program, datetime.fromisoformat("2026-01-05T15:00:00+00:00"),
                   KannelGateway(cfg, program.sender))  # fmt: skip
    assert done.counts["unconfirmed"] == 1
    statuses = dict(con.execute("SELECT message_id, status FROM sends.messages").fetchall())
    assert statuses == {"00000000000000a1": "unconfirmed", "00000000000000a2": "submitted"}
    (tmp_path / "gateway" / "receipts").mkdir(parents=True)  # the receipt turns up after all
    (tmp_path / "gateway" / "receipts" / "2026-01-05.jsonl").write_text(
        '{"id": "00000000000000a1", "dlr": 1, "received_at": "2026-01-05T16:00:00.000000Z"}\n'
    )
    receipts.ingest(con, tmp_path / "gateway")
    assert (
        con.execute(
            "SELECT status FROM sends.messages WHERE message_id = '00000000000000a1'"
        ).fetchone()[0]
        == "delivered"
    )
