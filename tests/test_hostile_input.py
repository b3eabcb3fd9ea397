"""Hostile input corpus: each kind gets a clear error or a quarantine row with its reason,
nothing is lost (rows in = accepted + quarantined), and nothing is executed."""

from __future__ import annotations

import http.client
import socket
import threading
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest
from mini_warehouse import MiniWarehouse, campaign, program, utc

from ingest.load import load_range
from send_jobs.campaign_specs import CampaignError, load_campaigns, load_program, parse_campaign
from send_jobs.decide import decide
from send_jobs.receiver import make_server
from send_jobs.replies import ReplyClassifier

HEADER = "customer_id,first_name,phone_e164,country,region,time_zone,language,created_at"
OK_AT = "2025-01-02T10:00:00Z"


def row(name="Ada", phone="+12125550100", created=OK_AT, cid="C1") -> str:
    if any(ch in name for ch in ',"\n'):
        name = '"' + name.replace('"', '""') + '"'
    return f"{cid},{name},{phone},US,NY,America/New_York,en,{created}"


# (kind, customers.csv line or whole-file bytes, expected quarantine reason or None = accepted)
INGEST = [
    ("huge field", row(name="A" * 1_000_000), "field too long"),
    ("NUL byte", row(name="Ada\x00Lovelace"), "control characters in field"),
    ("terminal escape", row(name="\x1b[31mRed\x1b[0m"), "control characters in field"),
    (
        "CP1252 line in a UTF-8 file",
        row().encode().replace(b"Ada", b"\x93Ada\x94"),
        "invalid UTF-8",
    ),  # fmt: skip
    ("CSV injection", row(name="=cmd|' /C calc'!A0"), None),
    ("template syntax", row(name="{{ 7*7 }}{% for x in y %}"), None),
    ("HTML and script", row(name="<script>alert(1)</script><b>"), None),
    ("SQL metacharacters", row(name="Robert'); DROP TABLE raw.customers;--"), None),
    ("right-to-left override", row(name="\u202eevil\u202c"), None),
    ("zero-width characters", row(name="A\u200bd\u200da\ufeff"), None),
    ("phone with spaces", row(phone="+1 212 555 0100"), None),
    ("phone with brackets", row(phone="(212) 555-0100"), None),
    ("phone with a foreign 00 prefix", row(phone="0012125550100"), "invalid phone number"),
    ("phone as tel: URI", row(phone="tel:+12125550100"), None),
    ("phone with extension", row(phone="+12125550100x5"), "invalid phone number"),
    ("toll-free phone in letters", row(phone="+1800FLOWERS"), "phone number cannot receive SMS"),
    ("phone in fullwidth digits", row(phone="+１２１２５５５０１００"), None),
    ("phone too short", row(phone="+1212"), "invalid phone number"),
    ("phone too long", row(phone="+121255501001234567"), "invalid phone number"),
    ("timestamp without zone", row(created="2025-01-02 10:00:00"), "timestamp without time zone"),
    ("leap day", row(created="2024-02-29T10:00:00Z"), None),
    (
        "leap day that does not exist",
        row(created="2025-02-29T10:00:00Z"),
        "unparseable timestamp",
    ),  # fmt: skip
    ("far-past date", row(created="0001-01-01T00:00:00Z"), "timestamp far in the past"),
    ("19th-century date", row(created="1899-12-31T23:59:59Z"), "timestamp far in the past"),
]


@pytest.mark.parametrize(("kind", "line", "reason"), INGEST, ids=[k for k, _, _ in INGEST])
def test_ingest_quarantines_or_keeps_verbatim(tmp_path, kind, line, reason):
    landing = tmp_path / "landing"
    (landing / "customers").mkdir(parents=True)
    body = line if isinstance(line, bytes) else line.encode()
    good = row(cid="C2").encode()
    (landing / "customers" / "2025-01-02.csv").write_bytes(
        HEADER.encode() + b"\n" + body + b"\n" + good + b"\n"
    )
    con = duckdb.connect()
    load_range(con, "customers", landing, date(2025, 1, 2), date(2025, 1, 2), datetime(2025, 2, 1))
    read, accepted, quarantined = con.execute(
        "SELECT rows_read, rows_accepted, rows_quarantined FROM raw.load_files"
    ).fetchone()
    assert (read, accepted + quarantined) == (2, 2)  # nothing lost
    reasons = [r[0] for r in con.execute("SELECT reason FROM raw.quarantine").fetchall()]
    if reason is None:
        assert reasons == []
        stored = con.execute("SELECT first_name FROM raw.customers WHERE customer_id = 'C1'")
        text = body.decode()
        expected = text.split(",")[1] if '"' not in text else None
        value = stored.fetchone()[0]
        assert expected is None or value == expected  # verbatim, nothing interpreted
    else:
        assert reasons == [reason]
    assert (
        con.execute("SELECT count(*) FROM raw.customers WHERE customer_id = 'C2'").fetchone()[0]
        == 1
    )  # the table is intact and the good row loaded


def test_a_utf16_file_is_rejected_whole_with_a_reason(tmp_path):
    landing = tmp_path / "landing"
    (landing / "customers").mkdir(parents=True)
    (landing / "customers" / "2025-01-02.csv").write_bytes(
        (HEADER + "\n" + row() + "\n").encode("utf-16")
    )
    con = duckdb.connect()
    load_range(con, "customers", landing, date(2025, 1, 2), date(2025, 1, 2), datetime(2025, 2, 1))
    reasons = {r[0] for r in con.execute("SELECT reason FROM raw.quarantine").fetchall()}
    assert reasons == {"unreadable header"}
    read, accepted, quarantined = con.execute(
        "SELECT rows_read, rows_accepted, rows_quarantined FROM raw.load_files"
    ).fetchone()
    assert accepted == 0 and quarantined == read > 0


NAMES = {
    "FORMULA": ("=cmd|' /C calc'!A0", "=cmd|' /C calc'!A0"),
    "TEMPLATE": ("{{ 7*7 }}{% raw %}", "{{ 7*7 }}{% raw %}"),
    "HTML": ("<script>alert(1)</script>", "<script>alert(1)</script>"),
    "SQL": ("x'); DROP TABLE sends.messages;--", "x'); DROP TABLE sends.messages;--"),
    "RTL": ("\u202eevil\u202c", "evil"),  # bidi controls never reach a message
    "ZERO_WIDTH": ("A\u200bd\u200da\ufeff", "Ada"),
    "NEWLINES": ("Ada\nReply YES to win", "AdaReply YES to win"),
    "ONLY_INVISIBLE": ("\u200b\u200b", "there"),  # nothing left: the fallback
}


def test_hostile_names_render_as_plain_text(tmp_path):
    w = MiniWarehouse(tmp_path / "w.duckdb")
    for cid, (name, _) in NAMES.items():
        w.customer(cid, first_name=name)
    prog = program(global_control_share=0.0)
    run = decide(w.con, prog, [campaign(prog)], utc("2026-06-10T15:00:00Z"))
    texts = dict(
        w.con.execute(
            "SELECT customer_id, rendered_text FROM sends.decisions WHERE run_id = ?",
            [run.run_id],
        ).fetchall()
    )
    for cid, (_, shown) in NAMES.items():
        assert texts[cid].startswith(f"Northwind Goods: Hi {shown}, news: "), cid
    encodings = dict(w.con.execute("SELECT customer_id, encoding FROM sends.messages").fetchall())
    assert encodings["RTL"] == encodings["ZERO_WIDTH"] == "GSM-7"  # no cost doubling
    assert w.con.execute("SELECT count(*) FROM sends.messages").fetchone()[0] == len(NAMES)


def test_campaign_files_cannot_execute_anything(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "evil.yaml").write_text(
        f'!!python/object/apply:os.system ["touch {marker}"]\n', encoding="utf-8"
    )
    with pytest.raises(CampaignError, match="not valid YAML"):
        load_campaigns(tmp_path, load_program())
    assert not marker.exists()
    spec = {
        "id": "evil", "name": "Evil", "category": "marketing", "trigger": {"type": "customers"},
        "variants": [{"id": "v", "template": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}],
    }  # fmt: skip
    with pytest.raises(CampaignError, match="refused"):
        parse_campaign(spec, load_program())


@pytest.fixture
def receiver(tmp_path):
    server = make_server(0, "secret", tmp_path / "gateway", "Northwind Goods")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], tmp_path / "gateway"
    server.shutdown()
    server.server_close()


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        return s.recv(200)


def _alive(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/health")
    return conn.getresponse().status == 200


def test_receiver_survives_malformed_and_oversized_requests(receiver):
    port, root = receiver
    assert b"Error code: 400" in _raw(port, b"GARBAGE\r\n\r\n")  # not even HTTP: bare 400
    assert b" 414 " in _raw(port, b"GET /mo?k=" + b"x" * 100_000 + b" HTTP/1.1\r\n\r\n")
    assert b" 400 " in _raw(
        port, b"GET /mo?k=secret&from=%2B12125550100&text=%FF%FE HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert b" 400 " in _raw(port, b"POST /mo HTTP/1.1\r\nContent-Length: nope\r\n\r\n")
    assert _alive(port)
    assert not list(Path(root).rglob("*.jsonl"))  # nothing recorded from any of them


def test_long_and_disguised_replies_are_kept_bounded_and_understood(receiver):
    port, root = receiver
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    body = "k=secret&from=%2B12125550100&text=" + "stop+texting+me+" * 3000
    conn.request("POST", "/mo", body=body.encode(),
                 headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read().decode().startswith("Northwind Goods: You are")
    [line] = next(root.glob("replies/*.jsonl")).read_text().splitlines()
    assert len(line) < 3000  # the text is cut at 2,000 characters
    for disguised in ("ＳＴＯＰ", "S\u200bTOP", "Arrêt", "stop\u202e"):
        assert ReplyClassifier().classify(disguised)[:2] == ("opt_out", "opt_out"), disguised


@pytest.mark.parametrize(
    "escape, reason",
    [
        ("\\u0000", "control characters in field"),
        ("\\u001b[31m", "control characters in field"),
        ("\\u007F", "control characters in field"),
        ("\\u007f", "control characters in field"),
        ("\x7f", "control characters in field"),  # DEL is the one raw control JSON allows
        ("\x1b[31m", "invalid JSON"),  # a raw control in a JSON string breaks the line
        ("\x00", "invalid JSON"),
    ],
)
def test_a_control_character_escaped_in_json_is_quarantined(tmp_path, escape, reason):
    """JSON may spell a control character as an escape; the decoded value still holds it."""
    landing = tmp_path / "landing"
    (landing / "events").mkdir(parents=True)
    fields = '"event_type": "app_open", "occurred_at": "2025-01-02T10:00:00Z"'
    line = '{"event_id": "E1", "customer_id": "C1' + escape + '", ' + fields
    line += ', "provenance": "explicit"}'
    clean = line.replace(escape, "").replace("E1", "E2")
    (landing / "events" / "2025-01-02.jsonl").write_text(line + "\n" + clean + "\n")
    con = duckdb.connect()
    load_range(con, "events", landing, date(2025, 1, 2), date(2025, 1, 2), datetime(2025, 2, 1))
    reasons = [r[0] for r in con.execute("SELECT reason FROM raw.quarantine").fetchall()]
    assert reasons == [reason]
    assert con.execute("SELECT event_id FROM raw.events").fetchall() == [("E2",)]
