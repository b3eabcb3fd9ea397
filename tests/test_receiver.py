"""The receiver over real HTTP: secrets, bad requests, keywords and confirmation replies; the
journal loads into the ledger once, with quarantine for damaged lines."""

import contextlib
import http.client
import json
import socket
import threading
import time
import urllib.parse

import duckdb
import pytest

from send_jobs import receipts
from send_jobs.ledger import ensure_schema
from send_jobs.receiver import CallbackHandler, make_server, sender_e164
from send_jobs.replies import ReplyClassifier

SECRET = "s3cret-for-tests"


@pytest.fixture
def receiver(tmp_path):
    server = make_server(0, SECRET, tmp_path / "gateway", "Northwind Goods")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], tmp_path / "gateway"
    server.shutdown()
    server.server_close()


def get(port: int, path: str, **params) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path + ("?" + urllib.parse.urlencode(params) if params else ""))
    resp = conn.getresponse()
    body = resp.read().decode()
    conn.close()
    return resp.status, body


@pytest.mark.parametrize(
    ("text", "intent", "flagged"),
    [
        ("STOP", "opt_out", False),
        ("  stop. ", "opt_out", False),
        ("Arret", "opt_out", False),
        ("STOPALL", "opt_out", False),
        ("unsubscribe", "opt_out", False),
        ("optout", "opt_out", False),
        ("revoke", "opt_out", False),
        # polite or emphatic opt-outs: each was "other" before
        ("stop please", "opt_out", False),
        ("please stop", "opt_out", False),
        ("pls stop", "opt_out", False),
        ("STOP IT", "opt_out", False),
        ("STOP NOW", "opt_out", False),
        ("STOP ALL", "opt_out", False),
        ("cancel please", "opt_out", False),
        ("Stop Northwind", "opt_out", False),
        ("end all", "opt_out", False),
        ("désabonner", "opt_out", False),
        ("Arrêt svp", "opt_out", False),
        ("STOP PUB", "opt_out", False),
        ("START", "opt_in", False),
        ("unstop", "opt_in", False),
        ("yes", "yes", False),  # an answer, never an opt-in
        ("HELP", "help", False),
        ("aide", "help", False),
        ("pls stop texting me", "opt_out", False),
        ("please don't text me again", "opt_out", True),
        ("Remove me from this list", "opt_out", True),
        ("no more messages thanks", "opt_out", True),
        ("stop the madness, love the coffee", "opt_out", True),  # a keyword: opt-out wins
        ("Thanks! See you Tuesday", "other", False),
        # negations are not opt-outs (both were before), and are flagged for a human
        ("don't stop texting me", "other", True),
        ("I will never miss a text", "other", False),
        ("nonstop deals this weekend", "other", False),  # keywords inside other words
        ("", "other", False),
    ],
)
def test_reply_classification(text, intent, flagged):
    got_intent, action, got_flagged = ReplyClassifier(brand="Northwind Goods").classify(text)
    assert (got_intent, got_flagged) == (intent, flagged)
    assert action == {"opt_out": "opt_out", "opt_in": "opt_in"}.get(intent)


@pytest.mark.parametrize(
    ("sender", "region", "e164"),
    [
        ("2125550199", "US", "+12125550199"),  # national: read in the short code's country
        ("12125550199", "US", "+12125550199"),
        ("+12125550199", "US", "+12125550199"),
        ("0012125550199", "US", "+12125550199"),
        ("01144 7700 900123", "US", "+447700900123"),
        ("07700900123", "GB", "+447700900123"),
        ("0044 7700 900123", "GB", "+447700900123"),
        ("+44 7700 900123", "US", "+447700900123"),
        ("0612345678", "FR", "+33612345678"),
        ("07700900123", "US", None),  # not a US number: kept for review, never guessed
        ("NORTHWIND", "US", None),
    ],
)
def test_reply_senders_are_normalised_in_the_short_codes_country(sender, region, e164):
    assert sender_e164(sender, region) == e164


def test_secret_and_bad_requests_get_4xx(receiver):
    port, root = receiver
    assert get(port, "/dlr", id="0123456789abcdef", type="1")[0] == 401
    assert get(port, "/dlr", k="wrong", id="0123456789abcdef", type="1")[0] == 403
    assert get(port, "/mo", k="", **{"from": "+12125550100", "text": "STOP"})[0] == 401
    assert get(port, "/dlr", k=SECRET, id="../../etc/passwd", type="1")[0] == 400
    assert get(port, "/dlr", k=SECRET, id="0123456789abcdef", type="3")[0] == 400
    assert get(port, "/nowhere", k=SECRET)[0] == 404
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", f"/mo?k={SECRET}", body=b"x" * (70 * 1024))
    assert conn.getresponse().status == 413
    conn.close()
    assert get(port, "/health") == (200, "ok\n")
    assert not root.exists() or not any(root.rglob("*.jsonl"))  # nothing was recorded


def test_a_reply_is_never_refused_and_an_odd_sender_is_kept_for_review(receiver, tmp_path):
    port, root = receiver
    for sender in ("'; DROP TABLE x;--", "2125550199", "07700900123"):
        assert get(port, "/mo", k=SECRET, **{"from": sender, "text": "STOP"})[0] == 200
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    counts = receipts.ingest(con, root)
    assert (counts["replies"], counts["quarantined"]) == (1, 2)
    assert con.execute("SELECT phone_e164, sender_raw FROM sends.inbound").fetchall() == [
        ("+12125550199", "2125550199")
    ]
    kept = con.execute("SELECT reason, raw FROM sends.gateway_quarantine ORDER BY line").fetchall()
    assert [r for r, _ in kept] == ["sender is not a phone number"] * 2
    assert "DROP TABLE" in kept[0][1] and "07700900123" in kept[1][1]


def test_only_a_true_retry_is_deduplicated(receiver, tmp_path):
    """STOP, START, STOP within one minute (one Kannel time stamp) are three replies; a retry
    of the same callback (the same Kannel message id) is one."""
    port, root = receiver
    same_minute = "2026-11-29 12:00:00"
    for n, text in enumerate(("STOP", "START", "STOP")):
        kannel_id = f"5e1a0c2e-0000-4000-8000-00000000000{n}"
        for _ in range(2):  # Kannel retries each callback once
            get(port, "/mo", k=SECRET, **{"from": "+12125550100", "text": text,
                                          "at": same_minute, "id": kannel_id})  # fmt: skip
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    counts = receipts.ingest(con, root)
    assert (counts["replies"], counts["duplicates"]) == (3, 3)
    actions = con.execute("SELECT action FROM sends.inbound ORDER BY received_at").fetchall()
    assert actions == [("opt_out",), ("opt_in",), ("opt_out",)]


def test_replies_get_one_confirmation_and_land_durably(receiver):
    port, root = receiver
    code, body = get(port, "/mo", k=SECRET, **{"from": "+12125550100", "text": "STOP", "at": "1"})
    assert code == 200 and body.startswith("Northwind Goods: You are unsubscribed")
    assert "%" not in body and "off" not in body.lower()  # no marketing in a confirmation
    assert get(port, "/mo", k=SECRET, **{"from": "12125550101", "text": "HELP"})[1].startswith(
        "Northwind Goods: Help"
    )
    assert get(port, "/mo", k=SECRET, **{"from": "+12125550102", "text": "Thanks!"}) == (200, "")
    lines = (next((root / "replies").glob("*.jsonl"))).read_text().splitlines()
    assert len(lines) == 3


def test_journal_loads_once_with_quarantine_and_partial_lines(receiver, tmp_path):
    port, root = receiver
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_schema(con)
    con.execute(
        "INSERT INTO sends.messages VALUES ('0123456789abcdef', 'k', 'r', '2026-01-01', 'c', "
        "'marketing', 'C1', '+12125550100', 'US', 'NY', 'America/New_York', 't', 'GSM-7', 1, "
        "0.01, 'submitted', '2026-01-01', 1, 'kannel', 'b', NULL, NULL, NULL, NULL, NULL)"
    )
    for dlr in ("8", "1", "1"):  # the second "1" is a replayed callback
        assert get(port, "/dlr", k=SECRET, id="0123456789abcdef", type=dlr)[0] == 200
    assert get(port, "/dlr", k=SECRET, id="fedcba9876543210", type="1")[0] == 200  # unknown id
    for _ in range(2):  # a retried callback carries the same Kannel message id: one row
        get(port, "/mo", k=SECRET, **{"from": "+12125550100", "text": "STOP", "at": "2026-1",
                                      "id": "5e1a0c2e-1111-4000-8000-000000000000"})  # fmt: skip
    receipts_file = next((root / "receipts").glob("*.jsonl"))
    with open(receipts_file, "a") as f:
        f.write("{not json}\n")
        f.write('{"id": "0123456789abcdef", "dlr": 2')  # a line still being written
    counts = receipts.ingest(con, root)
    assert counts == {
        "lines": 7,
        "receipts": 2,
        "replies": 1,
        "clicks": 0,
        "duplicates": 2,
        "quarantined": 2,
        "status_changes": 1,
        "answers_recorded": 0,
        "answers_queued": 0,
    }
    assert con.execute("SELECT status FROM sends.messages").fetchone()[0] == "delivered"
    history = con.execute("SELECT status FROM sends.message_events ORDER BY rowid").fetchall()
    assert history == [("accepted",), ("delivered",)]
    reasons = sorted(
        r[0] for r in con.execute("SELECT reason FROM sends.gateway_quarantine").fetchall()
    )
    assert reasons == ["not a JSON object", "unknown message id"]
    assert con.execute("SELECT action FROM sends.inbound").fetchall() == [("opt_out",)]
    with open(receipts_file, "a") as f:  # the cut line completes later: read exactly once
        f.write(', "received_at": "2026-01-02T00:00:00.000000Z"}\n')
    again = receipts.ingest(con, root)
    assert again["lines"] == 1 and again["receipts"] == 1
    # delivered is final: a late "undelivered" does not move it back
    assert con.execute("SELECT status FROM sends.messages").fetchone()[0] == "delivered"
    assert receipts.ingest(con, root)["lines"] == 0


def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes and read what comes back before the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(4096):
                out += chunk
        except TimeoutError:
            pass
    return out


def test_a_negative_content_length_is_refused_without_reading_the_body(receiver):
    port, _ = receiver
    started = time.monotonic()
    answer = raw_exchange(port, b"POST /dlr HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400") and time.monotonic() - started < 4


def test_a_sender_that_hangs_up_before_its_answer_ends_only_its_connection(tmp_path):
    """The callback is journaled; writing the answer to a sender already gone (EPIPE on a
    socket pair, every time) ends that connection quietly instead of raising into the
    server's error handler (which printed a traceback per hang-up)."""
    server = make_server(0, SECRET, tmp_path / "gateway", "Northwind Goods")
    ours, theirs = socket.socketpair()
    try:
        theirs.sendall(f"GET /dlr?k={SECRET}&id={'a' * 16}&type=1 HTTP/1.1\r\n\r\n".encode())
        theirs.close()  # gone before the answer
        CallbackHandler(ours, ("127.0.0.1", 0), server)  # serves the connection, then returns
    finally:
        ours.close()
        server.server_close()
    [line] = (tmp_path / "gateway" / "receipts").glob("*.jsonl")
    assert json.loads(line.read_text())["id"] == "a" * 16


def test_idle_connections_are_capped_and_closed(tmp_path):
    server = make_server(0, SECRET, tmp_path / "gateway", "Northwind Goods", idle_timeout_s=1.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
    try:
        time.sleep(0.5)
        assert threading.active_count() - before <= server.max_connections
        time.sleep(1.5)  # the idle ones time out; the receiver serves again
        assert get(port, "/health") == (200, "ok\n")
    finally:
        for s in idle:
            s.close()
        server.shutdown()
        server.server_close()


def test_a_full_disk_is_answered_503_and_leaves_no_partial_line(tmp_path, small_disk):
    root = small_disk(tmp_path / "disk", "16k")
    server = make_server(0, SECRET, root, "Northwind Goods")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        assert get(port, "/dlr", k=SECRET, id="0123456789abcdef", type="8")[0] == 200
        with open(root / "filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
            while True:  # the rest of the disk
                f.write(b"x" * 512)
        answers = [get(port, "/dlr", k=SECRET, id="0123456789abcdef", type="1")[0]
                   for _ in range(40)]  # fmt: skip
        assert 503 in answers and set(answers) <= {200, 503}
        (root / "filler").unlink()
        assert get(port, "/mo", k=SECRET, **{"from": "+12125550100", "text": "STOP"})[0] == 200
    finally:
        server.shutdown()
        server.server_close()
    kept = (root / "receipts").glob("*.jsonl")
    lines = [line for f in kept for line in f.read_text().splitlines()]
    assert len(lines) == 1 + answers.count(200)
    assert all(json.loads(line)["id"] == "0123456789abcdef" for line in lines)
