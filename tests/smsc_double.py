"""Test double for a carrier's SMPP 3.4 SMSC. Kannel's own ``drive_smpp`` only pushes MO load
and no SMPP server package runs here, so this small one plays the carrier for the SMPP tests:
it accepts Kannel's bind (checking system-id and password), answers each ``submit_sm`` with a
decimal message id, sends delivery receipts (``deliver_sm`` with esm_class 0x04, the usual
``id:... stat:DELIVRD`` text plus the receipted_message_id and message_state TLVs) when told
to, and sends replies (MO ``deliver_sm``) as a phone would."""

import itertools
import socket
import struct
import threading
import time
from dataclasses import dataclass

BIND = {0x00000001: 0x80000001, 0x00000002: 0x80000002, 0x00000009: 0x80000009}
SUBMIT_SM, SUBMIT_SM_RESP = 0x00000004, 0x80000004
DELIVER_SM, DELIVER_SM_RESP = 0x00000005, 0x80000005
UNBIND, UNBIND_RESP = 0x00000006, 0x80000006
ENQUIRE_LINK, ENQUIRE_LINK_RESP = 0x00000015, 0x80000015
GENERIC_NACK = 0x80000000
ESME_RINVPASWD = 0x0000000E
STATES = {"DELIVRD": 2, "UNDELIV": 5, "REJECTD": 8}


@dataclass
class Submitted:
    message_id: str
    source: str
    destination: str
    text: str
    registered_delivery: int
    receipted: bool = False


def _cstr(data: bytes, at: int) -> tuple[str, int]:
    end = data.index(b"\0", at)
    return data[at:end].decode("latin-1"), end + 1


def _pdu(command: int, status: int, seq: int, body: bytes = b"") -> bytes:
    return struct.pack(">IIII", 16 + len(body), command, status, seq) + body


def _deliver_body(source: str, destination: str, esm_class: int, text: bytes,
                  tlvs: bytes = b"") -> bytes:  # fmt: skip
    return (b"\0" + bytes([1, 1]) + source.encode() + b"\0" + bytes([1, 1])
            + destination.encode() + b"\0" + bytes([esm_class, 0, 0]) + b"\0\0"
            + bytes([0, 0, 0, 0, len(text)]) + text + tlvs)  # fmt: skip


class SmscDouble:
    def __init__(self, system_id: str, password: str) -> None:
        self.system_id, self.password = system_id, password
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.submitted: list[Submitted] = []
        self.binds = 0
        self.lock = threading.Lock()
        self.session: socket.socket | None = None
        self.seq = itertools.count(1)
        self.ids = itertools.count(1_000_001)
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def _send(self, conn: socket.socket, data: bytes) -> None:
        with self.lock:
            conn.sendall(data)

    def _serve(self, conn: socket.socket) -> None:
        try:
            while True:
                length, command, _status, seq = struct.unpack(">IIII", self._read(conn, 16))
                body = self._read(conn, length - 16)
                self._handle(conn, command, seq, body)
        except (ConnectionError, OSError):
            pass
        finally:
            if self.session is conn:
                self.session = None
            conn.close()

    def _handle(self, conn: socket.socket, command: int, seq: int, body: bytes) -> None:
        if command in BIND:
            system_id, at = _cstr(body, 0)
            password, _ = _cstr(body, at)
            ok = (system_id, password) == (self.system_id, self.password)
            self._send(conn, _pdu(BIND[command], 0 if ok else ESME_RINVPASWD, seq,
                                  b"smsc\0"))  # fmt: skip
            if ok:
                self.binds += 1
                self.session = conn
        elif command == SUBMIT_SM:
            self._send(conn, _pdu(SUBMIT_SM_RESP, 0, seq, self._submit(body).encode() + b"\0"))
        elif command == ENQUIRE_LINK:
            self._send(conn, _pdu(ENQUIRE_LINK_RESP, 0, seq))
        elif command == UNBIND:
            self._send(conn, _pdu(UNBIND_RESP, 0, seq))
        elif command != DELIVER_SM_RESP:
            self._send(conn, _pdu(GENERIC_NACK, 0x00000003, seq))

    def _submit(self, body: bytes) -> str:
        _service, at = _cstr(body, 0)
        source, at = _cstr(body, at + 2)
        destination, at = _cstr(body, at + 2)
        at += 3  # esm_class, protocol_id, priority_flag
        _schedule, at = _cstr(body, at)
        _validity, at = _cstr(body, at)
        registered, coding, length = body[at], body[at + 2], body[at + 4]
        raw = body[at + 5 : at + 5 + length]
        text = raw.decode("utf-16-be") if coding == 8 else raw.decode("latin-1")
        message_id = str(next(self.ids))
        with self.lock:
            self.submitted.append(Submitted(message_id, source, destination, text, registered))
        return message_id

    def send_receipts(self, stat: str = "DELIVRD") -> int:
        """A receipt for every message that asked for one and has none yet; returns how many."""
        sent = 0
        stamp = time.strftime("%y%m%d%H%M")
        for m in [m for m in self.submitted if m.registered_delivery and not m.receipted]:
            done = "001" if stat == "DELIVRD" else "000"
            text = (f"id:{m.message_id} sub:001 dlvrd:{done} submit date:{stamp} "
                    f"done date:{stamp} stat:{stat} err:000 text:").encode()  # fmt: skip
            tlvs = (struct.pack(">HH", 0x001E, len(m.message_id) + 1) + m.message_id.encode()
                    + b"\0" + struct.pack(">HHB", 0x0427, 1, STATES[stat]))  # fmt: skip
            self._deliver(_deliver_body(m.destination, m.source, 0x04, text, tlvs))
            m.receipted = True
            sent += 1
        return sent

    def send_reply(self, sender: str, short_code: str, text: str) -> None:
        """A reply (MO) from a phone."""
        self._deliver(_deliver_body(sender, short_code, 0x00, text.encode("latin-1")))

    def _deliver(self, body: bytes) -> None:
        session = self.session
        if session is None:
            raise ConnectionError("Kannel is not bound")
        self._send(session, _pdu(DELIVER_SM, 0, next(self.seq), body))

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        if self.session is not None:
            self.session.close()
