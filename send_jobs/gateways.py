"""Gateways take a batch of messages (Arrow table: message_id, phone_e164, text, encoding)
and report one answer per message, ``(message_id, result, detail, handed_over_at)``:

- ``submitted``: the gateway took it;
- ``rejected``: refused for this recipient (final; counts toward the number's suppression);
- ``refused``: refused for this message, e.g. malformed (final; says nothing of the number);
- ``retry``: not handed over (the gateway was unreachable, refused our credentials, throttled
  us, or the journal failed): stays queued for the next run;
- ``unknown``: the request may have reached the gateway but no answer came back. It is never
  resent blindly: a receipt proves the send, and only once the grace period since its own
  hand-over has passed and the gateway reports it holds nothing is it queued again.

When the gateway stops a batch part-way (``halted``: unreachable, auth, throttled, journal),
the messages it did not hand over are answered ``retry``.

- ``OutboxGateway`` (the embedded default): JSON-lines batch files plus a manifest (count,
  sha256) under ``RETENTEXT_OUTBOX``; each file is written to a temporary name, fsynced and
  renamed, manifest last, so a batch is either complete or absent.
- ``KannelGateway``: Kannel's HTTP ``sendsms`` with ``dlr-mask`` 31 and a ``dlr-url`` to the
  receiver; concurrent keep-alive connections and a shared rate limit. Its journal
  (``<state>/journal/<batch>.jsonl``) gets an intent line for every message, fsynced before
  the request, and the answer after it, fsynced before the ledger hears of it: a sender killed
  or a disk that fills up loses no answer, and a message without an intent was never sent.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import mmap
import os
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from send_jobs.config import KannelConfig

Clock = Callable[[], datetime]
Answer = tuple[str, str, str, datetime | None]  # (message_id, result, detail, handed_over_at)
# Kannel's sendsms answers a 4xx naming the number for these; any other 4xx is about the
# message or our request, not the recipient
RECIPIENT_REFUSALS = re.compile(r"receiver|black|white|denied|number", re.I)
# Kannel's access-log lines: a message handed to a carrier link (our id as its account, the
# carrier's id as FID) and a receipt from the carrier (the same FID, the DLR type last). The
# fake link sometimes logs the message before it has its FID: then the recipient joins them.
SENT_LINE = re.compile(
    rb"Sent SMS \[SMSC:[^\]]*\] \[SVC:[^\]]*\] \[ACT:([0-9a-f]{16})\] \[BINF:[^\]]*\] "
    rb"\[FID:([^\]]*)\] \[META:[^\]]*\] \[from:[^\]]*\] \[to:([^\]]*)\]"
)
DLR_LINE = re.compile(
    rb"Receive DLR \[SMSC:[^\]]*\] \[SVC:[^\]]*\] \[ACT:[^\]]*\] \[BINF:[^\]]*\] "
    rb"\[FID:([^\]]*)\] \[META:[^\]]*\] \[from:[^\]]*\] \[to:([^\]]*)\] "
    rb"\[flags:[^\]]*:(\d+)\]"
)


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


def fsync_dir(path: Path) -> None:
    """Make a file's creation or rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _unstamp(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


class OutboxGateway:
    name = "outbox"
    receipt_timeout_h = None  # a written batch is the hand-over: no receipts come back
    rate_per_s = 0.0  # a batch is handed over at once
    unknown_grace_s = 0.0
    halted: str | None = None  # a failed write raises instead

    def __init__(self, folder: Path, batch_size: int = 10_000) -> None:
        self.folder = Path(folder)
        self.batch_size = batch_size

    @property
    def location(self) -> str:
        return str(self.folder.resolve())

    def manifest_path(self, batch_id: str) -> Path:
        return self.folder / f"{batch_id}.manifest.json"

    def submit(self, batch: pa.Table, batch_id: str, clock: Clock) -> list[Answer]:
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
            fsync_dir(self.folder)
        except OSError:  # no manifest, no batch: the data file goes too
            (self.folder / name).unlink(missing_ok=True)
            raise
        at = clock()
        return [(m, "submitted", f"outbox {name}", at) for m in ids]


def outbox_answers(location: str, batch_ids: list[str]) -> Iterator[tuple[str, Answer]]:
    """A batch whose manifest exists was written whole; any other is answered ``retry`` and
    its leftovers removed (they were never complete, so never consumed)."""
    folder = Path(location)
    for batch_id in batch_ids:
        manifest = folder / f"{batch_id}.manifest.json"
        if manifest.exists():
            at = datetime.fromtimestamp(manifest.stat().st_mtime, UTC)
            ids = (json.loads(line)["message_id"]
                   for line in (folder / f"{batch_id}.jsonl").read_text().splitlines())  # fmt: skip
            for mid in ids:
                yield batch_id, (mid, "submitted", f"outbox batch {batch_id}", at)
        else:
            for leftover in folder.glob(f"{batch_id}.jsonl*"):
                leftover.unlink()


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


class SendJournal:
    """One batch's journal: intent lines (fsynced before the requests) and answer lines
    (fsynced before the ledger is told). A write error is raised to the caller, which stops
    handing over."""

    def __init__(self, path: Path) -> None:
        created = not path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.lock = threading.Lock()
        if created:
            fsync_dir(path.parent)

    def _append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # a short write is continued, an error raised
            view = view[os.write(self.fd, view) :]

    def intend(self, message_ids: list[str], at: datetime) -> None:
        stamp = _stamp(at)
        lines = "".join(json.dumps({"id": m, "intent_at": stamp}) + "\n" for m in message_ids)
        with self.lock:
            self._append(lines.encode())
        os.fsync(self.fd)  # outside the lock: answers keep being appended meanwhile

    def answer(self, message_id: str, result: str, detail: str, at: datetime) -> None:
        line = json.dumps({"id": message_id, "result": result, "detail": detail,
                           "at": _stamp(at)}) + "\n"  # fmt: skip
        with self.lock:
            self._append(line.encode())

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


def kannel_answers(location: str, batch_ids: list[str]) -> Iterator[tuple[str, Answer]]:
    """(batch_id, answer) from the journals: the journaled answer, else ``unknown`` for a
    message whose intent was written (it may have reached Kannel), stamped with that time.
    A message with neither was never handed over and is not listed."""
    for batch_id in batch_ids:
        path = Path(location) / f"{batch_id}.jsonl"
        if not path.exists():
            continue
        answers: dict[str, Answer] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                j = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill or a full disk
            if "result" in j:
                answers[j["id"]] = (j["id"], j["result"], j["detail"], _unstamp(j.get("at")))
            elif j["id"] not in answers:
                answers[j["id"]] = (j["id"], "unknown", "handed over; no answer journaled",
                                    _unstamp(j["intent_at"]))  # fmt: skip
        for answer in answers.values():
            yield batch_id, answer


def _done(answer: Answer) -> Future:
    future: Future = Future()
    future.set_result(answer)
    return future


JOURNALS = {"outbox": outbox_answers, "kannel": kannel_answers}


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
        self.halted: str | None = None  # why the last batch stopped part-way
        self.journal_dir = cfg.state / "journal"
        split = urllib.parse.urlsplit(cfg.sendsms_url)
        self.host, self.port, self.path = split.hostname, split.port, split.path

    @property
    def location(self) -> str:
        return str(self.journal_dir.resolve())

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
                # written into Kannel's access log with the message ([ACT:...]): the record
                # of what Kannel handed to the carrier and the receipts it got for it
                "account": message_id,
            }
        )
        return f"{self.path}?{query}"

    def holds_messages(self) -> bool | None:
        """Whether Kannel still holds messages it accepted (its store, its queues, a carrier
        link's queue), from the admin ``status.xml``; None when it cannot be asked."""
        url = (f"http://{self.host}:{self.cfg.admin_port}/status.xml?password="
               + urllib.parse.quote(self.cfg.admin_password, safe=""))  # fmt: skip
        try:
            with urllib.request.urlopen(url, timeout=self.cfg.timeout_s) as r:
                text = r.read().decode("utf-8", "replace")
        except OSError:
            return None
        sms = re.search(r"<sms>(.*?)</sms>", text, re.S)
        if not sms:
            return None
        store = re.search(r"<storesize>(-?\d+)</storesize>", sms.group(1))
        queued = [int(q) for q in re.findall(r"<queued>(\d+)</queued>", sms.group(1))]
        links = re.findall(r"<smsc>.*?<queued>(\d+)</queued>", text, re.S)
        return bool((store and int(store.group(1)) > 0) or any(queued)
                    or any(int(q) for q in links))  # fmt: skip

    def log_position(self) -> int:
        """Where Kannel's access log ends now: a batch's messages appear after it."""
        path = self.cfg.state / "access.log"
        return path.stat().st_size if path.exists() else 0

    def kannel_record(self, message_ids: set[str], since: int) -> dict[str, int | None]:
        """What Kannel's access log (a local Kannel's ``<state>/access.log``, read from byte
        ``since``) shows of ``message_ids``: id -> the final DLR type it got from the carrier
        (1, 2 or 16), or None when it was sent and no final receipt is logged yet. Ids it does
        not show are left out."""
        path = self.cfg.state / "access.log"
        if not message_ids or not path.exists() or path.stat().st_size <= since:
            return {}
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as log:
            sent = SENT_LINE.findall(log, since)
            finals = [(fid, to, int(dlr)) for fid, to, dlr in DLR_LINE.findall(log, since)
                      if int(dlr) in (1, 2, 16)]  # fmt: skip
        by_fid = {fid: dlr for fid, _, dlr in finals if fid}
        by_to = {to: dlr for _, to, dlr in finals}
        record: dict[str, int | None] = {}
        for act, fid, to in sent:
            mid = act.decode()
            if mid not in message_ids or record.get(mid) == 1:
                continue  # a part delivered counts for the whole message
            final = by_fid.get(fid) if fid else by_to.get(to)
            record[mid] = final if final is not None else record.get(mid)
        return record

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

    def _halt(self, reason: str) -> None:
        if self.halted is None:
            self.halted = reason

    def send_one(self, path: str) -> tuple[str, str]:
        """One sendsms request: (result, detail). Only a request that cannot have reached
        Kannel (refused or failed before it was written) is tried again."""
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
                return self._judge(resp.status, body)
            except (ConnectionError, http.client.HTTPException, TimeoutError, OSError) as exc:
                self._drop_conn()
                detail = f"{type(exc).__name__}: {exc}"
                if sent:  # the request went out and Kannel may have taken it: no blind resend
                    return "unknown", detail
            if attempt < self.cfg.max_attempts:
                time.sleep(delay)
                delay *= 2
        if detail.startswith("ConnectionRefusedError"):
            self._halt(f"unreachable: {detail}")  # the rest of the batch stays queued
        return "retry", detail

    def _judge(self, status: int, body: str) -> tuple[str, str]:
        detail = f"HTTP {status}: {body}"
        if status in (200, 202):
            return "submitted", body
        if status in (401, 403, 407):
            self._halt(f"auth: Kannel refused our credentials ({detail})")
            return "retry", detail
        if status == 429:
            self._halt(f"throttled: {detail}")
            return "retry", detail
        if 400 <= status < 500:
            return ("rejected" if RECIPIENT_REFUSALS.search(body) else "refused"), detail
        return "unknown", detail  # a 5xx may come after Kannel queued the message

    def _start(self, pool, work, journal: SendJournal, part: list, clock: Clock) -> list:
        """Journal the intents of ``part`` (fsynced), then queue its requests; a part that
        cannot be journaled, or comes after a halt, is answered ``retry`` without a request."""
        if part and not self.halted:
            try:
                journal.intend([r[0] for r in part], clock())
            except OSError as exc:
                self._halt(f"journal: {exc}")
        if self.halted:
            return [_done((r[0], "retry", f"not handed over: {self.halted}", None)) for r in part]
        return [pool.submit(work, r) for r in part]

    def submit(self, batch: pa.Table, batch_id: str, clock: Clock) -> list[Answer]:
        """Hand the batch over in groups of 512: a group's intents are fsynced before any of
        its requests (while the group before it is still in flight), its requests go out
        concurrently, each answer is journaled, and every answer is fsynced before the ledger
        hears of it. On a journal error or a halt nothing more is handed over."""
        self.halted = None
        limit = _RateLimit(self.cfg.rate_per_s)
        rows = list(zip(*(batch.column(c).to_pylist()
                          for c in ("message_id", "phone_e164", "text", "encoding")),
                        strict=True))  # fmt: skip
        answers: list[Answer] = []
        group = max(self.cfg.concurrency * 32, 256)  # one fsync of intents per group
        try:
            journal = SendJournal(self.journal_dir / f"{batch_id}.jsonl")
        except OSError as exc:
            self._halt(f"journal: {exc}")
            return [(r[0], "retry", f"not handed over: {self.halted}", None) for r in rows]

        def work(row) -> Answer:
            mid, to, text, enc = row
            if self.halted:
                return mid, "retry", f"not handed over: {self.halted}", None
            limit.wait()
            at = clock()
            result, detail = self.send_one(self.request_path(to, text, enc, mid))
            try:
                journal.answer(mid, result, detail, at)
            except OSError as exc:  # the answer still reaches the ledger through us
                self._halt(f"journal: {exc}")
            return mid, result, detail, at

        groups = [rows[i : i + group] for i in range(0, len(rows), group)]
        try:
            with ThreadPoolExecutor(self.cfg.concurrency) as pool:
                # the next group's intents are made durable while this group is in flight, so
                # the connections never wait for a journal fsync
                running = self._start(pool, work, journal, groups[0], clock) if groups else []
                for k in range(len(groups)):
                    following = groups[k + 1] if k + 1 < len(groups) else []
                    queued = self._start(pool, work, journal, following, clock)
                    answers += [f.result() for f in running]
                    try:
                        journal.sync()
                    except OSError as exc:
                        self._halt(f"journal: {exc}")
                    running = queued
        finally:
            journal.close()
        return answers
