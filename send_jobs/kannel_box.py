"""A local Kannel on loopback: bearerbox + smsbox with ``fakesmsc`` as the carrier.

``up`` renders ``kannel/kannel.conf.template`` into the state folder, starts each process in
its own session, writes ``<name>.pid`` files and waits until the carrier link is online;
``down`` stops them by PID (SIGTERM, then SIGKILL after a grace period). ``carrier_messages``
reads what the carrier received (multipart messages reassembled), and ``inject_reply`` sends a
reply (MO) into Kannel through a second fake link, as a phone would.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from send_jobs.config import KannelConfig, write_private

TEMPLATE = Path(__file__).parent / "kannel" / "kannel.conf.template"
FAKESMSC_PATHS = ("/usr/lib/kannel/test/fakesmsc", "/usr/bin/fakesmsc")
PROCESSES = ("bearerbox", "smsbox", "carrier")


class KannelError(RuntimeError):
    pass


def fakesmsc_binary() -> str:
    for path in FAKESMSC_PATHS:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("fakesmsc")
    if not found:
        raise KannelError(
            "fakesmsc not found; install Debian's kannel-extras (make kannel does it)"
        )
    return found


# port ranges this process has reserved: base -> the file descriptor holding its lock
_RESERVED: dict[int, int] = {}
KANNEL_PORT_OFFSETS = (0, 1, 2, 3, 13, 80, 81)


def _reserve(base: int) -> bool:
    """Hold an exclusive lock on ``base`` for the life of this process, so another process
    (a second test session, a benchmark) never picks the range between our check and our
    bind. The lock is released when the process exits, however it exits."""
    if base in _RESERVED:
        return True
    folder = Path(tempfile.gettempdir()) / "retentext-ports"
    folder.mkdir(exist_ok=True)
    fd = os.open(folder / f"{base}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _RESERVED[base] = fd
    return True


def _ports_free(base: int) -> bool:
    """Whether a server could listen on every Kannel port of ``base`` now. Probed the way the
    servers bind (SO_REUSEADDR, as Kannel and the receiver do), so a port held only by a
    closed connection in TIME_WAIT counts as free."""
    try:
        for offset in KANNEL_PORT_OFFSETS:
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", base + offset))
    except OSError:
        return False
    return True


def free_base_port(start: int = 21000, stop: int = 60000) -> int:
    """A base port whose Kannel ports (+0..+3, +13, +80, +81) are all free on loopback and that no
    other process has reserved; this process keeps it reserved until it exits."""
    for base in range(start, stop, 100):
        if _reserve(base) and _ports_free(base):
            return base
    raise KannelError(f"no free port range between {start} and {stop}")


def quoted(value: str) -> str:
    """A value as Kannel's configuration reads it back unchanged: in double quotes, with
    backslashes and quotes escaped. Line breaks cannot be written and are refused."""
    if "\n" in value or "\r" in value or value != value.strip():
        raise KannelError(f"a Kannel setting cannot hold line breaks or edge spaces: {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


DLR_TABLE = """CREATE TABLE IF NOT EXISTS dlr (smsc TEXT, ts TEXT, source TEXT,
    destination TEXT, service TEXT, url TEXT, mask INTEGER, status INTEGER, boxc TEXT)"""


def render_config(cfg: KannelConfig) -> Path:
    """Write ``kannel.conf`` (0600 from the first byte) and the SQLite file that keeps
    Kannel's delivery-receipt mappings across restarts."""
    cfg.state.mkdir(parents=True, exist_ok=True)
    dlr_db = cfg.state / "dlr.sqlite3"
    with contextlib.closing(sqlite3.connect(dlr_db)) as db:
        db.execute(DLR_TABLE)
        db.commit()
        # write-ahead log (kept in the file): one fsync per receipt mapping, not several
        db.execute("PRAGMA journal_mode=WAL")
    dlr_db.chmod(0o600)
    secret = urllib.parse.quote(cfg.receiver_secret, safe="")
    mo_url = (f"http://127.0.0.1:{cfg.receiver_port}/mo?k={secret}"
              "&from=%q&to=%P&text=%a&at=%t&smsc=%i&id=%I")  # fmt: skip
    carrier = (
        (TEMPLATE.parent / f"carrier_{cfg.carrier}.conf")
        .read_text()
        .format(
            carrier_port=cfg.carrier_port,
            unified_prefix=quoted(cfg.unified_prefix),
            smpp_host=quoted(cfg.smpp_host),
            smpp_port=int(cfg.smpp_port),
            smpp_system_id=quoted(cfg.smpp_system_id),
            smpp_password=quoted(cfg.smpp_password),
            smpp_system_type=quoted(cfg.smpp_system_type),
            smpp_throughput=float(cfg.smpp_throughput),
            smpp_msg_id_type=int(cfg.smpp_msg_id_type),
        )
    )
    text = TEMPLATE.read_text().format(
        carrier=carrier,
        admin_port=cfg.admin_port,
        smsbox_port=cfg.smsbox_port,
        inject_port=cfg.inject_port,
        sendsms_port=cfg.sendsms_port,
        admin_password=quoted(cfg.admin_password),
        sendsms_password=quoted(cfg.sendsms_password),
        unified_prefix=quoted(cfg.unified_prefix),
        bearerbox_log=quoted(str(cfg.state / "bearerbox.log")),
        access_log=quoted(str(cfg.state / "access.log")),
        smsbox_log=quoted(str(cfg.state / "smsbox.log")),
        store=quoted(str(cfg.state / "bearerbox.store")),
        dlr_db=quoted(str(dlr_db)),
        mo_url=quoted(mo_url),
    )
    path = cfg.state / "kannel.conf"
    write_private(path, text.encode())
    return path


def pid_of(cfg: KannelConfig, name: str) -> int | None:
    path = cfg.state / f"{name}.pid"
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def start_process(cfg: KannelConfig, name: str, argv: list[str], log: Path) -> int:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: `down` stops it and its children
            cwd=cfg.state,
        )
    (cfg.state / f"{name}.pid").write_text(f"{proc.pid}\n")
    return proc.pid


def _wait_port(port: int, timeout: float, alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise KannelError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def wait_ready(cfg: KannelConfig, name: str, port: int, timeout: float = 20.0) -> None:
    """Wait until the process behind ``name``.pid listens on ``port``; its log on failure."""
    try:
        _wait_port(port, timeout, lambda: pid_of(cfg, name) is not None)
    except KannelError as exc:
        log = cfg.state / f"{name}.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise KannelError(f"{name} did not start: {exc}\n{tail}") from exc


def status(cfg: KannelConfig) -> str:
    url = f"http://127.0.0.1:{cfg.admin_port}/status.txt?password=" + urllib.parse.quote(
        cfg.admin_password
    )
    with urllib.request.urlopen(url, timeout=2) as r:
        return r.read().decode("utf-8", "replace")


def up(cfg: KannelConfig, *, timeout: float = 20.0, carrier: bool = True) -> dict[str, int]:
    """Start whatever is not running; return name -> pid."""
    conf = render_config(cfg)
    pids = {}
    for name, port in (("bearerbox", cfg.smsbox_port), ("smsbox", cfg.sendsms_port)):
        for attempt in range(3):  # smsbox gives up if bearerbox is not quite ready: retry
            if not pid_of(cfg, name):
                start_process(cfg, name, [name, str(conf)], cfg.state / f"{name}.out")
            try:
                _wait_port(port, timeout / 3, lambda n=name: pid_of(cfg, n) is not None)
                break
            except KannelError:
                if attempt == 2:
                    raise
                time.sleep(1.0)
    if carrier and cfg.carrier == "smpp":
        _wait_online(cfg, timeout, "the SMPP carrier link did not bind; see bearerbox.log")
    elif carrier and not pid_of(cfg, "carrier"):
        # fakesmsc exits when its stdin closes, so a never-ending producer keeps it open
        cmd = (
            f"tail -f /dev/null | exec {fakesmsc_binary()} -H 127.0.0.1 "
            f"-r {cfg.carrier_port} -i 0 -m 0"
        )
        start_process(cfg, "carrier", ["sh", "-c", cmd], cfg.state / "carrier.log")
        _wait_online(cfg, timeout, "the fakesmsc carrier did not come online; see carrier.log")
    for name in PROCESSES:
        pid = pid_of(cfg, name)
        if pid:
            pids[name] = pid
    return pids


def _wait_online(cfg: KannelConfig, timeout: float, problem: str) -> None:
    deadline = time.monotonic() + timeout
    while "carrier" not in _online_links(cfg):
        if time.monotonic() > deadline:
            raise KannelError(problem)
        time.sleep(0.1)


def _online_links(cfg: KannelConfig) -> set[str]:
    try:
        text = status(cfg)
    except OSError:
        return set()
    return set(re.findall(r"^\s*(\S+)\[\S*\]\s.*\(online", text, re.M)) | set(
        re.findall(r"^\s*(\S+)\s+FAKE.*\(online", text, re.M)
    )


STOP_ORDER = ("smsbox", "bearerbox", "carrier")


def down(cfg: KannelConfig, names: tuple[str, ...] = STOP_ORDER, grace: float = 10.0) -> list[str]:
    """Stop the named processes, in that order, by their PID files. By default smsbox first
    (nothing new comes in), then bearerbox, and the carrier last: a carrier stopped while
    bearerbox still writes to it loses what is on the wire, and bearerbox fails what it
    still queues for the link with a rejection receipt."""
    stopped = []
    for name in names:
        pid = pid_of(cfg, name)
        if pid is None:
            (cfg.state / f"{name}.pid").unlink(missing_ok=True)
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        (cfg.state / f"{name}.pid").unlink(missing_ok=True)
        stopped.append(name)
    return stopped


def kill(cfg: KannelConfig, name: str) -> None:
    """SIGKILL one process group now (fault injection)."""
    pid = pid_of(cfg, name)
    if pid:
        os.killpg(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.02)
        (cfg.state / f"{name}.pid").unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


_GOT = re.compile(r"Got message \d+: <(\S+) (\S+) (\S+) (.*)>$")


def carrier_messages(log: Path) -> list[tuple[str, str]]:
    """(recipient, full text) of every message the carrier received, multipart reassembled."""
    out: list[tuple[str, str]] = []
    pending: dict[tuple[str, int, int], dict[int, bytes]] = {}
    if not Path(log).exists():
        return out
    for line in Path(log).read_text(encoding="utf-8", errors="replace").splitlines():
        m = _GOT.search(line)
        if not m:
            continue
        _sender, receiver, kind, rest = m.groups()
        if kind == "text":
            out.append((receiver, rest))
        elif kind == "ucs-2":
            out.append((receiver, urllib.parse.unquote_to_bytes(rest).decode("utf-16-be")))
        elif kind == "data":
            out.append((receiver, _decode(urllib.parse.unquote_to_bytes(rest.replace("+", " ")))))
        elif kind == "udh":
            udh_hex, coding, data = rest.split(" ", 2)
            udh = urllib.parse.unquote_to_bytes(udh_hex)
            ref, total, seq = udh[3], udh[4], udh[5]
            body = urllib.parse.unquote_to_bytes(data.replace("+", " "))
            parts = pending.setdefault((receiver, ref, total), {})
            parts[seq] = body
            if len(parts) == total:
                joined = b"".join(parts[i] for i in range(1, total + 1))
                out.append((receiver, _decode(joined)))
                del pending[(receiver, ref, total)]
    return out


def _decode(data: bytes) -> str:
    """fakesmsc prints multipart bodies as bytes without their coding: UCS-2 (UTF-16BE) text
    always holds NUL bytes, GSM text (shown as UTF-8) never does."""
    if b"\x00" in data:
        return data.decode("utf-16-be", errors="replace")
    return data.decode("utf-8", errors="replace")


def inject_reply(
    cfg: KannelConfig, sender: str, text: str, short_code: str = "12345", timeout: float = 10.0
) -> str:
    """Send one reply (MO) from ``sender`` to the short code through the inject link and
    return what Kannel answered to that phone (the confirmation reply), or ''."""
    log = cfg.state / f"inject-{time.monotonic_ns()}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [fakesmsc_binary(), "-H", "127.0.0.1", "-r", str(cfg.inject_port), "-i", "0",
             "-m", "1", f"{sender} {short_code} text {text}"],
            stdin=subprocess.PIPE,  # kept open: fakesmsc quits when its stdin closes
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    reply = ""
    while time.monotonic() < deadline:
        m = re.search(r"Got message \d+: <\S+ \S+ (\S+) (.*)>", log.read_text(errors="replace"))
        if m:
            kind, body = m.groups()
            reply = (
                urllib.parse.unquote_to_bytes(body).decode("utf-16-be")
                if kind == "ucs-2"
                else _decode(urllib.parse.unquote_to_bytes(body.replace("+", " ")))
                if kind == "data"
                else body
            )
            break
        time.sleep(0.05)
    proc.stdin.close()
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # seen on a loaded machine: fakesmsc ignored SIGTERM
        proc.kill()
        proc.wait()
    log.unlink(missing_ok=True)
    return reply
