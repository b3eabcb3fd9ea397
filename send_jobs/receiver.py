"""The gateway receiver: Kannel's DLR callbacks (``/dlr``) and replies (``/mo``, an
sms-service ``get-url``), authenticated by a shared secret (``k``).

Each accepted request is appended as one JSON line to
``<landing>/gateway/{receipts,replies}/<UTC date>.jsonl`` and flushed and fsynced before the
200 answer, so an answered callback is never lost and an unanswered one is retried by Kannel.
The receiver never opens the warehouse (DuckDB allows one writer); ``receipts.ingest`` loads
the lines into ``sends.receipts`` / ``sends.inbound`` and moves message statuses.

A reply's answer body is the one confirmation Kannel sends back (opt-out, opt-in, help);
anything else gets an empty body, which Kannel (``omit-empty``) does not send. Bad requests get
a 4xx and a reason, never a crash.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import threading
import unicodedata
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

from send_jobs.campaign_specs import RULES_DIR
from send_jobs.ledger import DLR_STATUS

MAX_BODY = 64 * 1024
MAX_FIELD = 2000  # characters kept of any one field (an SMS is at most a few hundred)
PHONE = re.compile(r"^\+?[1-9]\d{6,14}$")
MESSAGE_ID = re.compile(r"^[0-9a-f]{16}$")
INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


class Keywords:
    """Reply classification from ``rules/keywords.yaml``."""

    def __init__(self, path: Path = RULES_DIR / "keywords.yaml", brand: str = "") -> None:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        self.words = {
            intent: {w.upper() for w in raw[intent]} for intent in ("opt_out", "opt_in", "help")
        }
        self.phrases = [re.compile(p, re.I) for p in raw["opt_out_phrases"]]
        self.replies = {k: v.format(brand=brand) for k, v in raw["replies"].items()}

    def classify(self, text: str) -> tuple[str, str | None, bool]:
        """(intent, consent action or None, flagged for review). Text is NFKC-normalised and
        stripped of invisible characters first, so "ＳＴＯＰ" and "S\u200bTOP" mean STOP."""
        text = INVISIBLE.sub("", unicodedata.normalize("NFKC", text or ""))
        word = re.sub(r"^[\s\W_]+|[\s\W_]+$", "", text).upper()
        word = "".join(  # ARRÊT is ARRET
            ch for ch in unicodedata.normalize("NFKD", word) if not unicodedata.combining(ch)
        )
        for intent, words in self.words.items():
            if word in words:
                action = {"opt_out": "opt_out", "opt_in": "opt_in"}.get(intent)
                return intent, action, False
        if any(p.search(text or "") for p in self.phrases):
            return "opt_out", "opt_out", True  # free text read as an opt-out
        return "other", None, False

    def reply(self, intent: str) -> str:
        return self.replies.get(intent, "")


class Journal:
    """Append-only JSON lines per kind and UTC day, durable before the HTTP answer."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.lock = threading.Lock()

    def append(self, kind: str, record: dict) -> None:
        day = record["received_at"][:10]
        folder = self.root / kind
        line = (json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n").encode()
        with self.lock:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder / f"{day}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)


def make_handler(secret: str, keywords: Keywords):
    class Handler(BaseHTTPRequestHandler):
        server_version = "retentext-receiver"
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002 - quiet; the journal is the log
            pass

        def _answer(self, code: int, body: str = "") -> None:
            data = body.encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 - http.server's naming
            self._handle(urlsplit(self.path).query)

        def do_POST(self):  # noqa: N802
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                return self._answer(400, "bad Content-Length\n")
            if length > MAX_BODY:
                self.close_connection = True
                return self._answer(413, f"body over {MAX_BODY} bytes\n")
            body = self.rfile.read(length).decode("utf-8", errors="replace")
            query = urlsplit(self.path).query
            self._handle(query + ("&" if query and body else "") + body)

        def _handle(self, query: str) -> None:
            try:
                path = urlsplit(self.path).path
                try:
                    params = {
                        k: v[0][:MAX_FIELD]
                        for k, v in parse_qs(query, keep_blank_values=True, errors="strict").items()
                    }
                except (UnicodeDecodeError, ValueError):
                    return self._answer(400, "query is not valid UTF-8 form data\n")
                if path == "/health":
                    return self._answer(200, "ok\n")
                if path not in ("/dlr", "/mo"):
                    return self._answer(404, "unknown path\n")
                given = params.get("k", "")
                if not given:
                    return self._answer(401, "missing shared secret\n")
                if not hmac.compare_digest(given.encode(), secret.encode()):
                    return self._answer(403, "wrong shared secret\n")
                received_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                if path == "/dlr":
                    return self._dlr(params, received_at)
                return self._mo(params, received_at)
            except Exception as exc:  # never crash the server on one request
                return self._answer(500, f"internal error: {type(exc).__name__}\n")

        def _dlr(self, p: dict, received_at: str) -> None:
            mid, dlr = p.get("id", ""), p.get("type", "")
            if not MESSAGE_ID.match(mid):
                return self._answer(400, "id must be a 16-character message id\n")
            if not dlr.isdigit() or int(dlr) not in DLR_STATUS:
                return self._answer(400, f"type must be one of {sorted(DLR_STATUS)}\n")
            self.server.journal.append(
                "receipts",
                {
                    "id": mid,
                    "dlr": int(dlr),
                    "at": p.get("at"),
                    "smsc": p.get("smsc"),
                    "reply": p.get("reply"),
                    "received_at": received_at,
                },
            )
            self._answer(200, "ok\n")

        def _mo(self, p: dict, received_at: str) -> None:
            sender, text = p.get("from", "").strip(), p.get("text", "")
            if not PHONE.match(sender):
                return self._answer(400, "from must be a phone number in E.164\n")
            if "\x00" in text:
                return self._answer(400, "text contains NUL\n")
            phone = sender if sender.startswith("+") else "+" + sender
            intent, action, flagged = keywords.classify(text)
            kannel_at = p.get("at") or ""
            inbound_id = (
                uuid.uuid5(uuid.NAMESPACE_URL, f"{phone}|{kannel_at}|{text}").hex
                if kannel_at
                else uuid.uuid4().hex
            )  # a replayed callback carries the same Kannel time: same id, ingested once
            self.server.journal.append(
                "replies",
                {
                    "inbound_id": inbound_id,
                    "from": phone,
                    "to": p.get("to"),
                    "text": text,
                    "at": kannel_at,
                    "intent": intent,
                    "action": action,
                    "flagged": flagged,
                    "received_at": received_at,
                },
            )
            self._answer(200, keywords.reply(intent))

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # Kannel opens many callback connections at once
    allow_reuse_address = True


def make_server(port: int, secret: str, root: Path, brand: str, host: str = "127.0.0.1") -> Server:
    if not secret:
        raise ValueError("the receiver needs a shared secret (RETENTEXT_RECEIVER_SECRET)")
    server = Server((host, port), make_handler(secret, Keywords(brand=brand)))
    server.journal = Journal(root)
    return server
