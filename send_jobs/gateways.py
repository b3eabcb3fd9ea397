"""Gateways take a batch of messages (Arrow table: message_id, phone_e164, text, encoding)
and report one result per message: ``submitted``, ``rejected`` (final, with the reason),
``retry`` (not handed over: stays queued for the next run) or ``unknown`` (the request may
have reached the gateway but no answer came back; resolved by a receipt or requeued later).

- ``OutboxGateway`` (the embedded default): JSON-lines batch files plus a manifest (count,
  sha256) under ``RETENTEXT_OUTBOX``; each file is written to a temporary name, fsynced and
  renamed, manifest last, so a batch is either complete or absent.
- ``KannelGateway``: Kannel's HTTP ``sendsms`` with ``dlr-mask`` 31 and a ``dlr-url`` to the
  receiver; concurrent keep-alive connections, a shared rate limit, retries with exponential
  backoff on connection errors and 5xx; once Kannel refuses connections after every retry,
  the rest of the batch stays queued without trying. Every answer is appended to a journal
  before the ledger is updated, so a sender killed mid-batch loses no answer it got.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa

from send_jobs.config import KannelConfig

Result = tuple[str, str, str]  # (message_id, result, detail)


def _fsync_write(path: Path, data: bytes) -> None:
    """Write to a temporary name, fsync, rename: the file is whole or absent (a full disk
    leaves nothing behind)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


class OutboxGateway:
    name = "outbox"
    receipt_timeout_h = None  # a written batch is the hand-over: no receipts come back
    rate_per_s = 0.0  # a batch is handed over at once

    def __init__(self, folder: Path, batch_size: int = 10_000) -> None:
        self.folder = Path(folder)
        self.batch_size = batch_size

    def manifest_path(self, batch_id: str) -> Path:
        return self.folder / f"{batch_id}.manifest.json"

    def completed(self, batch_id: str) -> bool:
        if self.manifest_path(batch_id).exists():
            return True
        for leftover in self.folder.glob(f"{batch_id}.jsonl*"):  # cut short: never consumed
            leftover.unlink()
        return False

    def submit(self, batch: pa.Table, batch_id: str) -> list[Result]:
        self.folder.mkdir(parents=True, exist_ok=True)
        ids = batch.column("message_id").to_pylist()
        lines = [
            json.dumps(
                {"message_id": m, "to": to, "text": text, "encoding": enc},
                ensure_ascii=False,
                separators=(",", ":"),
            )
            for m, to, text, enc in zip(
                ids,
                batch.column("phone_e164").to_pylist(),
                batch.column("text").to_pylist(),
                batch.column("encoding").to_pylist(),
                strict=True,
            )
        ]
        data = ("\n".join(lines) + "\n").encode("utf-8") if lines else b""
        name = f"{batch_id}.jsonl"
        try:
            _fsync_write(self.folder / name, data)
        except OSError:
            (self.folder / name).unlink(missing_ok=True)
            raise
        manifest = {
            "batch_id": batch_id,
            "file": name,
            "count": len(lines),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        try:
            _fsync_write(self.manifest_path(batch_id), json.dumps(manifest, indent=1).encode())
        except OSError:  # no manifest, no batch: the data file goes too
            (self.folder / name).unlink(missing_ok=True)
            raise
        return [(m, "submitted", f"outbox {name}") for m in ids]


class _RateLimit:
    """A token bucket shared by all sender threads."""

    def __init__(self, per_s: float) -> None:
        self.interval = 1.0 / per_s if per_s > 0 else 0.0
        self.next = time.monotonic()
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            at = max(self.next, now)
            self.next = at + self.interval
        if at > now:
            time.sleep(at - now)


class KannelGateway:
    name = "kannel"

    def __init__(
        self,
        cfg: KannelConfig,
        sender: str,
        unknown_grace_s: float = 120.0,
        receipt_timeout_h: float = 72.0,
    ) -> None:
        self.cfg = cfg
        self.unknown_grace_s = unknown_grace_s
        self.receipt_timeout_h = receipt_timeout_h  # then `unconfirmed`
        self.sender = sender
        self.local = threading.local()
        self.unreachable = threading.Event()  # set when Kannel refuses connections
        self.journal_dir = cfg.state / "journal"
        split = urllib.parse.urlsplit(cfg.sendsms_url)
        self.host, self.port, self.path = split.hostname, split.port, split.path

    @property
    def rate_per_s(self) -> float:
        """Messages handed over per second: how long a chunk takes to leave."""
        return self.cfg.rate_per_s

    def dlr_url(self, message_id: str) -> str:
        secret = urllib.parse.quote(self.cfg.receiver_secret, safe="")
        return (
            f"{self.cfg.receiver_url}/dlr?k={secret}&id={message_id}&type=%d&at=%T&smsc=%i&reply=%A"
        )

    def request_path(self, to: str, text: str, encoding: str, message_id: str) -> str:
        query = urllib.parse.urlencode(
            {
                "username": "retentext",
                "password": self.cfg.sendsms_password,
                "from": self.sender,
                "to": to,
                "text": text,
                "charset": "UTF-8",
                "coding": "2" if encoding == "UCS-2" else "0",
                "dlr-mask": "31",
                "dlr-url": self.dlr_url(message_id),
            }
        )
        return f"{self.path}?{query}"

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.cfg.timeout_s)
            self.local.conn = conn
        return conn

    def _drop_conn(self) -> None:
        conn = getattr(self.local, "conn", None)
        if conn is not None:
            conn.close()
        self.local.conn = None

    def send_one(self, path: str) -> tuple[str, str]:
        """One sendsms request with retries: (result, detail)."""
        delay = 0.2
        detail = ""
        for attempt in range(1, self.cfg.max_attempts + 1):
            sent = False
            try:
                conn = self._conn()
                conn.putrequest("GET", path)
                conn.endheaders()
                sent = True
                resp = conn.getresponse()
                body = resp.read().decode("utf-8", "replace").strip()
                if resp.will_close:
                    self._drop_conn()
                if resp.status in (200, 202):
                    return "submitted", body
                if 400 <= resp.status < 500:
                    return "rejected", f"HTTP {resp.status}: {body}"
                detail = f"HTTP {resp.status}: {body}"
            except (ConnectionError, http.client.HTTPException, TimeoutError, OSError) as exc:
                self._drop_conn()
                detail = f"{type(exc).__name__}: {exc}"
                if sent:  # the request went out and Kannel may have taken it: no blind resend
                    return "unknown", detail
            if attempt < self.cfg.max_attempts:
                time.sleep(delay)
                delay *= 2
        if detail.startswith("ConnectionRefusedError"):
            self.unreachable.set()  # the rest of the batch stays queued without trying
        return "retry", detail

    def submit(self, batch: pa.Table, batch_id: str) -> list[Result]:
        self.journal_dir.mkdir(parents=True, exist_ok=True)
        self.unreachable = threading.Event()
        lock = threading.Lock()
        limit = _RateLimit(self.cfg.rate_per_s)
        rows = list(
            zip(
                batch.column("message_id").to_pylist(),
                batch.column("phone_e164").to_pylist(),
                batch.column("text").to_pylist(),
                batch.column("encoding").to_pylist(),
                strict=True,
            )
        )

        def work(row) -> Result:
            mid, to, text, enc = row
            if self.unreachable.is_set():
                return mid, "retry", "gateway unreachable: left queued"
            limit.wait()
            result, detail = self.send_one(self.request_path(to, text, enc, mid))
            with lock:  # written before the ledger hears of it; survives SIGKILL of us
                journal.write(json.dumps({"id": mid, "result": result, "detail": detail}) + "\n")
                journal.flush()
            return mid, result, detail

        path = self.journal_dir / f"{batch_id}.jsonl"
        with (
            open(path, "a", encoding="utf-8") as journal,
            ThreadPoolExecutor(self.cfg.concurrency) as pool,
        ):
            return list(pool.map(work, rows))

    def journal(self, batch_ids: list[str]) -> Iterator[tuple[str, Result]]:
        """(batch_id, result) of every journaled answer of those batches."""
        for batch_id in batch_ids:
            path = self.journal_dir / f"{batch_id}.jsonl"
            if not path.exists():
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    j = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                yield batch_id, (j["id"], j["result"], j["detail"])
