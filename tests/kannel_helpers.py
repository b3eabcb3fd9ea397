"""A real Kannel (bearerbox + smsbox, fakesmsc as the carrier) and an in-process receiver for
tests, plus what they read back: the carrier's log and the ledger."""

import http.client
import itertools
import shutil
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import port_range_start

from send_jobs import kannel_box, receipts
from send_jobs.config import KannelConfig
from send_jobs.receiver import make_server


def start_kannel(state: Path, port_base: int = 21000, **changes):
    """Kannel and a receiver on their own ports; returns (cfg, receiver server)."""
    if not shutil.which("bearerbox"):
        pytest.fail("Kannel is not installed: run `make kannel` (Debian kannel, kannel-extras)")
    cfg = KannelConfig.from_env({}).on_ports(
        state,
        kannel_box.free_base_port(port_range_start(port_base)),
        **{"admin_password": "admin-test", "sendsms_password": "send-test",
           "receiver_secret": "receiver-test", "concurrency": 16, "rate_per_s": 2000,
           **changes},
    )  # fmt: skip
    server = make_server(cfg.receiver_port, cfg.receiver_secret, state, "Northwind Goods")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        kannel_box.up(cfg)
    except BaseException:
        stop_kannel(cfg, server)  # nothing left running for the next test
        raise
    return cfg, server


def stop_kannel(cfg: KannelConfig, server) -> None:
    kannel_box.down(cfg)
    server.shutdown()
    server.server_close()


def carrier_codes(cfg) -> list[tuple[str, str]]:
    """(recipient, text) of everything the carrier received."""
    return kannel_box.carrier_messages(cfg.state / "carrier.log")


def wait_for(predicate, timeout=60.0, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def settle(cfg, landing, con, expected: list, skip: int) -> None:
    """Wait until the carrier got every expected message (after the first ``skip`` lines of
    its log) and each message has its final receipt."""
    if not wait_for(lambda: len(carrier_codes(cfg)) - skip >= len(expected)):
        missing = sorted(set(expected) - set(carrier_codes(cfg)[skip:]))
        history = [
            con.execute(
                """SELECT list((e.status, e.source, e.detail) ORDER BY e.rowid)
            FROM sends.messages AS m JOIN sends.message_events AS e USING (message_id)
            WHERE m.phone_e164 = ? AND m.text = ?""",
                list(m),
            ).fetchone()[0]
            for m in missing
        ]
        raise AssertionError(f"{len(missing)} never reached the carrier: {history}")

    def final():
        receipts.ingest(con, landing)
        return not con.execute(
            "SELECT count(*) FROM sends.messages WHERE status IN ('submitted', 'accepted')"
        ).fetchone()[0]

    assert wait_for(final, timeout=90)


def codes(con) -> list[tuple[str, str]]:
    """(recipient, text) of every message in the ledger."""
    return con.execute("SELECT phone_e164, text FROM sends.messages").fetchall()


class FaultyFront:
    """Test double for the network between the sender and the real Kannel: it forwards each
    sendsms request to Kannel and hands back Kannel's answer, except for the requests
    ``fault(n)`` names (n counts from 0): ``"drop"`` forwards the request and hangs up without
    an answer (lost on the way back), ``("after", code)`` forwards it and answers ``code``
    itself, ``("instead", code)`` answers ``code`` without forwarding."""

    def __init__(self, target_port: int, fault: Callable[[int], object]) -> None:
        counter = itertools.count()
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                with lock:
                    n = next(counter)
                what = fault(n)
                if isinstance(what, tuple) and what[0] == "instead":
                    return self._answer(what[1], b"refused by the front")
                conn = http.client.HTTPConnection("127.0.0.1", target_port, timeout=10)
                conn.request("GET", self.path)
                resp = conn.getresponse()
                body = resp.read()
                conn.close()
                if what == "drop":
                    self.close_connection = True
                    return
                if isinstance(what, tuple) and what[0] == "after":
                    return self._answer(what[1], b"front error after forwarding")
                self._answer(resp.status, body)

            def _answer(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
