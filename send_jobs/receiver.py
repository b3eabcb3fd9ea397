"""The gateway receiver: Kannel's DLR callbacks (``/dlr``) and replies (``/mo``, an
sms-service ``get-url``), authenticated by a shared secret (``k``).

Each accepted request is appended as one JSON line to
``<landing>/gateway/{receipts,replies}/<UTC date>.jsonl`` and flushed and fsynced before the
200 answer, so an answered callback is never lost and an unanswered one is retried by Kannel.
The receiver never opens the warehouse (DuckDB allows one writer); ``receipts.ingest`` loads
the lines into ``sends.receipts`` / ``sends.inbound`` and moves message statuses.

A reply's answer body is the one confirmation Kannel sends back (opt-out, opt-in, help);
anything else gets an empty body, which Kannel (``omit-empty``) does not send. A reply is never
refused: its sender is normalised to E.164 (national formats read in the short code's country)
and one that is no phone number is journaled for review. Bad DLRs get a 4xx and a reason,
never a crash.

Hardened for an open port: bodies are read only up to their declared, bounded length; a
connection silent for ``idle_timeout_s`` is closed; at most ``Server.max_connections`` are
served at once (the rest wait for a slot, 503 after 15 s); a journal that cannot take the
line (a full disk) answers 503, and Kannel retries the callback (``http-request-retry`` x
``http-queue-delay`` in the Kannel config: over an hour).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import phonenumbers

from send_jobs.gateways import fsync_dir
from send_jobs.ledger import DLR_STATUS
from send_jobs.replies import ReplyClassifier

MAX_BODY = 64 * 1024
MAX_FIELD = 2000  # characters kept of any one field (an SMS is at most a few hundred)
MESSAGE_ID = re.compile(r"^[0-9a-f]{16}$")
KANNEL_ID = re.compile(r"^[0-9a-fA-F-]{32,36}$")


def sender_e164(sender: str, region: str) -> str | None:
    """The reply's sender in E.164, read as a number of ``region`` (the country of the short
    code or SMSC) when it is in national format; None when it is not a possible number."""
    sender = sender.strip()
    if sender.startswith("00"):  # as Kannel's %q does; the region's own IDD (011) parses
        sender = "+" + sender[2:]
    try:
        number = phonenumbers.parse(sender, None if sender.startswith("+") else region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class Journal:
    """Append-only JSON lines per kind and UTC day, durable before the HTTP answer: a line is
    written whole and fsynced (with its folder, when the file is new), or not at all (a
    failed write is cut back off and raised, and the caller answers 503)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.lock = threading.Lock()

    def append(self, kind: str, record: dict) -> None:
        day = record["received_at"][:10]
        line = (json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n").encode()
        with self.lock:
            path = self._file(self.root / kind, f"{day}.jsonl")
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            try:
                start = os.fstat(fd).st_size
                try:
                    view = memoryview(line)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                except OSError:
                    os.ftruncate(fd, start)  # no partial line for the next one to run into
                    raise
            finally:
                os.close(fd)

    @staticmethod
    def _file(folder: Path, name: str) -> Path:
        """The journal file, created durably (the new entry fsynced in its folder)."""
        path = folder / name
        if path.exists():
            return path
        if not folder.exists():
            folder.mkdir(parents=True, exist_ok=True)
            fsync_dir(folder.parent)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        fsync_dir(folder)
        return path


@dataclass(frozen=True)
class Callbacks:
    """What the handler needs to judge a callback: the shared secret, how replies are read,
    and the country a national-format sender is read in (overall and per Kannel SMSC id)."""

    secret: str
    keywords: ReplyClassifier
    region: str = "US"
    smsc_regions: dict[str, str] = field(default_factory=dict)


class CallbackHandler(BaseHTTPRequestHandler):
    """One connection from Kannel: ``/dlr`` and ``/mo`` callbacks (GET or form POST) and
    ``/health``. Its server carries ``callbacks`` (Callbacks) and ``journal`` (Journal)."""

    server_version = "retentext-receiver"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet; the journal is the log
        pass

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout_s  # a silent connection is closed after it
        super().setup()

    def handle(self) -> None:
        # a sender that hangs up mid-request or before its answer ends its connection only;
        # what it sent before is journaled or not, and Kannel retries what was not answered
        with contextlib.suppress(ConnectionError):
            super().handle()

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._handle(urlsplit(self.path).query)

    def do_POST(self):  # noqa: N802
        body = self._body()
        if body is not None:
            query = urlsplit(self.path).query
            self._handle(query + ("&" if query and body else "") + body)

    def _body(self) -> str | None:
        """The form body, read up to its declared and bounded length; None when refused."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            if length < 0:
                self._answer(400, "bad Content-Length\n")
            else:
                self._answer(413, f"body over {MAX_BODY} bytes\n")
            return None
        return self.rfile.read(length).decode("utf-8", errors="replace")

    def _answer(self, code: int, body: str = "") -> None:
        data = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, query: str) -> None:
        try:
            self._route(urlsplit(self.path).path, query)
        except Unavailable as exc:
            self._answer(503, f"{exc}; retry later\n")
        except ConnectionError:
            raise  # the sender is gone: nobody to answer
        except Exception as exc:  # never crash the server on one request
            self._answer(500, f"internal error: {type(exc).__name__}\n")

    def _route(self, path: str, query: str) -> None:
        if path == "/health":
            return self._answer(200, "ok\n")
        if path not in ("/dlr", "/mo"):
            return self._answer(404, "unknown path\n")
        try:
            params = {
                k: v[0][:MAX_FIELD]
                for k, v in parse_qs(query, keep_blank_values=True, errors="strict").items()
            }
        except (UnicodeDecodeError, ValueError):
            return self._answer(400, "query is not valid UTF-8 form data\n")
        refusal = self._refusal(params.get("k", ""))
        if refusal:
            return self._answer(*refusal)
        received_at = self.server.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if path == "/dlr":
            return self._dlr(params, received_at)
        return self._mo(params, received_at)

    def _refusal(self, given: str) -> tuple[int, str] | None:
        """401 without the shared secret, 403 with a wrong one, None when it matches."""
        if not given:
            return 401, "missing shared secret\n"
        if not hmac.compare_digest(given.encode(), self.server.callbacks.secret.encode()):
            return 403, "wrong shared secret\n"
        return None

    def _dlr(self, p: dict, received_at: str) -> None:
        mid, dlr = p.get("id", ""), p.get("type", "")
        if not MESSAGE_ID.match(mid):
            return self._answer(400, "id must be a 16-character message id\n")
        if not dlr.isdigit() or int(dlr) not in DLR_STATUS:
            return self._answer(400, f"type must be one of {sorted(DLR_STATUS)}\n")
        receipt = {"id": mid, "dlr": int(dlr), "at": p.get("at"), "smsc": p.get("smsc"),
                   "reply": p.get("reply"), "received_at": received_at}  # fmt: skip
        self._journal("receipts", receipt)
        self._answer(200, "ok\n")

    def _mo(self, p: dict, received_at: str) -> None:
        """Every reply is kept: an unreadable sender is journaled with its problem (the
        loader quarantines it for review) and still answered 200, so Kannel drops
        nothing."""
        callbacks = self.server.callbacks
        reading = callbacks.keywords.read(p.get("text", ""))
        region = callbacks.smsc_regions.get(p.get("smsc") or "", callbacks.region)
        self._journal("replies", reply_record(p, reading, region, received_at))
        self._answer(200, callbacks.keywords.reply(reading.intent))

    def _journal(self, kind: str, record: dict) -> None:
        """Journal the record, or answer 503 so Kannel retries it later."""
        try:
            self.server.journal.append(kind, record)
        except OSError as exc:
            raise Unavailable(f"journal unavailable: {exc.strerror or exc}") from exc


def reply_record(p: dict, reading, region: str, received_at: str) -> dict:
    """The journal line of a reply (MO) callback's parameters ``p``, as read by ``reading``."""
    sender = p.get("from", "")
    phone = sender_e164(sender, region)
    kannel_id = p.get("id", "")
    # a retried callback carries Kannel's own message id: same id, loaded once. Without it
    # nothing is deduplicated (a later STOP is never mistaken for a replay).
    inbound_id = (
        uuid.uuid5(uuid.NAMESPACE_URL, f"kannel:{kannel_id.lower()}").hex
        if KANNEL_ID.match(kannel_id)
        else uuid.uuid4().hex
    )
    return {
        "inbound_id": inbound_id,
        "from": phone,
        "sender_raw": sender,
        "to": p.get("to"),
        "text": p.get("text", ""),
        "at": p.get("at") or "",
        "smsc": p.get("smsc"),
        "intent": reading.intent,
        "action": reading.action,
        "flagged": reading.flagged,
        "rule": reading.rule,
        "problem": None if phone else "sender is not a phone number",
        "received_at": received_at,
    }


class Unavailable(Exception):
    """The request cannot be kept now (the journal failed): answered 503, retried by Kannel."""


BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Server(ThreadingHTTPServer):
    """One thread per connection up to ``max_connections``; a connection beyond that waits
    in the listen backlog for a slot (idle ones time out), and is answered 503 (Kannel
    retries it) only when no slot frees within ``slot_wait_s``."""

    daemon_threads = True
    request_queue_size = 256  # Kannel opens many callback connections at once
    allow_reuse_address = True
    max_connections = 256
    slot_wait_s = 15.0

    def server_activate(self) -> None:
        super().server_activate()
        self.slots = threading.BoundedSemaphore(self.max_connections)

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(timeout=self.slot_wait_s):
            with contextlib.suppress(OSError):
                request.settimeout(1.0)
                request.sendall(BUSY)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


@contextlib.contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    """``server`` answering on a background thread until the block ends (tests, the demo)."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def make_server(
    port: int,
    secret: str,
    root: Path,
    brand: str,
    host: str = "127.0.0.1",
    *,
    region: str = "US",
    smsc_regions: dict[str, str] | None = None,
    idle_timeout_s: float = 10.0,
    clock: Callable[[], datetime] | None = None,
) -> Server:
    """``region``: the country a national-format sender is read in (the short code's);
    ``smsc_regions``: the same per Kannel SMSC id, for links in other countries;
    ``idle_timeout_s``: a connection silent that long (mid-request or between keep-alive
    requests) is closed; ``clock`` stamps what comes in (default: the wall clock; replays and
    simulations pass their own)."""
    if not secret:
        raise ValueError("the receiver needs a shared secret (RETENTEXT_RECEIVER_SECRET)")
    server = Server((host, port), CallbackHandler)
    server.idle_timeout_s = idle_timeout_s
    server.callbacks = Callbacks(secret, ReplyClassifier(brand=brand), region, smsc_regions or {})
    server.journal = Journal(root)
    server.clock = clock or (lambda: datetime.now(UTC))
    return server
