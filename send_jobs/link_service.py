"""The link service: ``GET <link_base path><code>`` answers 302 to the message's destination
(UTM included) and records the click; ``retentext links`` runs it.

- Codes are resolved from the link registry (``send_jobs.links.register``): the files are read
  at start, and again when a code is not found and a registry folder changed since, so a
  link registered a moment ago resolves at once. The service never opens the warehouse.
- Each click is appended as one JSON line to ``<landing>/gateway/clicks/<UTC date>.jsonl``
  and fsynced before the redirect (the receiver's ``Journal``); ``retentext receipts`` loads
  them as ``sends.clicks``. A journal that cannot take the line still redirects (the customer
  gets where they were going) and the loss is counted and logged.
- A code of the wrong shape is answered 400, an unknown one 404; neither says more, and
  neither is journaled (a guessing client cannot fill the disk).
- ``HEAD`` (link checkers) redirects without recording. Each click carries the class of its
  user agent: ``preview`` (link-preview and crawler bots, which open a link nobody tapped),
  ``mobile``, ``desktop`` or ``unknown``; the click-through rate counts only people.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

from send_jobs.links import CODE
from send_jobs.receiver import Journal, Server

PREVIEW = re.compile(
    r"bot\b|bot/|crawler|spider|preview|facebookexternalhit|whatsapp|slack|telegram|discord"
    r"|skypeuri|linkedin|embedly|quora link|pinterest|vkshare|w3c_validator|curl|wget"
    r"|python-requests|go-http-client|headless",
    re.IGNORECASE,
)
MOBILE = re.compile(r"mobile|android|iphone|ipad|ipod|windows phone|opera mini", re.IGNORECASE)


def user_agent_class(user_agent: str | None) -> str:
    """preview, mobile, desktop or unknown (no user agent at all)."""
    if not user_agent or not user_agent.strip():
        return "unknown"
    if PREVIEW.search(user_agent):
        return "preview"
    return "mobile" if MOBILE.search(user_agent) else "desktop"


class Registry:
    """code -> (message id, campaign id, destination) from the registry's JSON-lines files,
    ``<folder>/<UTC date>/<chunk>.jsonl``; files are immutable once renamed into place."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.codes: dict[str, tuple[str, str, str]] = {}
        self.files: set[str] = set()
        self.folder_times: dict[str, int] = {}
        self.lock = threading.Lock()
        self.refresh()

    def lookup(self, code: str) -> tuple[str, str, str] | None:
        hit = self.codes.get(code)
        if hit is None:
            # looked up again even when this refresh found nothing new: a concurrent one may
            # have read the file holding the code while this request waited for the lock
            self.refresh()
            hit = self.codes.get(code)
        return hit

    def refresh(self) -> bool:
        """Read the files of every registry folder that changed; True when any did."""
        with self.lock:
            changed = [d for d in self._day_folders() if self._changed(d)]
            for day in changed:
                for path in sorted(day.glob("*.jsonl")):
                    if str(path) not in self.files:
                        self._read(path)
            return bool(changed)

    def _day_folders(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.is_dir())

    def _changed(self, day: Path) -> bool:
        mtime = day.stat().st_mtime_ns
        if self.folder_times.get(str(day)) == mtime:
            return False
        self.folder_times[str(day)] = mtime
        return True

    def _read(self, path: Path) -> None:
        urls: dict[str, str] = {}
        with open(path, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                url = urls.setdefault(row["url"], row["url"])  # one string per destination
                self.codes[row["code"]] = (row["message_id"], sys.intern(row["campaign_id"]), url)
        self.files.add(str(path))


class LinkHandler(BaseHTTPRequestHandler):
    """One client connection. Its server carries ``registry``, ``journal``, ``prefix`` (the
    path codes follow) and ``lost_clicks``."""

    server_version = "retentext-links"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet; the journal is the log
        pass

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout_s
        super().setup()

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError):
            super().handle()

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._route(record=True)

    def do_HEAD(self):  # noqa: N802
        self._route(record=False)

    def _route(self, record: bool) -> None:
        path = urlsplit(self.path).path
        if path == "/health":
            return self._answer(200, "ok\n", record)
        prefix = self.server.prefix
        if not path.startswith(prefix):
            return self._answer(404, "not found\n", record)
        code = path[len(prefix) :]
        if not CODE.match(code):
            return self._answer(400, "malformed link\n", record)
        hit = self.server.registry.lookup(code)
        if hit is None:
            return self._answer(404, "not found\n", record)
        message_id, campaign_id, url = hit
        if record:
            self._record(code, message_id, campaign_id)
        self.send_response(302)
        self.send_header("Location", url)
        self.send_header("Cache-Control", "no-store")  # every tap comes back to us
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _record(self, code: str, message_id: str, campaign_id: str) -> None:
        click = {
            "click_id": uuid.uuid4().hex,
            "code": code,
            "message_id": message_id,
            "campaign_id": campaign_id,
            "ua_class": user_agent_class(self.headers.get("User-Agent")),
            "received_at": self.server.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        try:
            self.server.journal.append("clicks", click)
        except OSError as exc:  # the customer still gets where they were going
            with self.server.counter_lock:
                self.server.lost_clicks += 1
            print(f"click not recorded ({exc.strerror or exc}): {code}", file=sys.stderr)

    def _answer(self, code: int, body: str, with_body: bool) -> None:
        data = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if with_body:  # HEAD gets the headers only
            self.wfile.write(data)


def make_server(
    port: int,
    registry_folder: Path,
    journal_root: Path,
    link_base: str,
    host: str = "127.0.0.1",
    *,
    idle_timeout_s: float = 10.0,
    clock: Callable[[], datetime] | None = None,
) -> Server:
    """The link service on ``host:port``: codes follow ``link_base``'s path (the public URL
    is the shop's own domain, proxied here); clicks go to ``journal_root/clicks/``, stamped
    by ``clock`` (default: the wall clock; replays and simulations pass their own)."""
    server = Server((host, port), LinkHandler)
    server.idle_timeout_s = idle_timeout_s
    server.prefix = urlsplit(link_base).path or "/"
    server.registry = Registry(registry_folder)
    server.journal = Journal(journal_root)
    server.clock = clock or (lambda: datetime.now(UTC))
    server.lost_clicks = 0
    server.counter_lock = threading.Lock()
    return server
