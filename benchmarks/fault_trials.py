"""Fault trials against a real Kannel with fakesmsc as the carrier.

    python -m benchmarks.fault_trials --trials 20 [--messages 3000] [--seed 1]

Each trial queues a batch of messages in its own warehouse, delivers them in a separate
process and, at a random point, injects one fault: SIGKILL of the sending process, bearerbox,
smsbox, or the receiver while DLRs arrive; a bearerbox restart while messages sit in its store
with the carrier link down; or a full disk under the receiver's journal (freed after a random
5-25 s). Then it restarts what it stopped and runs deliveries (with a running hand-over clock)
until the ledger has nothing left to send, waits for the carrier and the receipts, and counts
at the carrier: every message exactly once (lost / duplicated), and the ledger reconciled
with the receipts Kannel got (its access log): delivered where Kannel has the final DLR,
accepted only where Kannel died before making one, nothing left waiting. It prints a table
per fault kind; the last line reads ``trials: T, lost: L, duplicated: D``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from benchmarks.sends import AS_OF, _receiver, campaign, world
from send_jobs import kannel_box, receipts
from send_jobs.campaign_specs import load_program
from send_jobs.config import KannelConfig
from send_jobs.decide import decide
from send_jobs.deliver import deliver
from send_jobs.gateways import KannelGateway

FAULTS = ("kill_sender", "kill_bearerbox", "kill_smsbox", "kill_receiver",
          "restart_bearerbox_link_down", "full_receiver_disk")  # fmt: skip
GRACE_S = 5.0  # unanswered submissions wait this long for a receipt before a resend


def _config(state: Path, base: int) -> KannelConfig:
    return KannelConfig.from_env({}).on_ports(
        state, base, admin_password="trial-admin", sendsms_password="trial-send",
        receiver_secret="trial-receiver", rate_per_s=1500, max_attempts=2, timeout_s=5,
    )  # fmt: skip


def deliver_once(
    warehouse: str, as_of: str, state: str, base: int, landing: str, started: float
) -> None:
    """One delivery in this process (the one the trials kill). Its hand-over clock runs from
    ``as_of`` with real time since the trial ``started`` (epoch seconds), in every process."""
    program = replace(load_program(), global_control_share=0.0)
    con = duckdb.connect(warehouse)
    gateway = KannelGateway(_config(Path(state), base), program.sender, unknown_grace_s=GRACE_S)
    at = datetime.fromisoformat(as_of)
    result = deliver(con, program, at, gateway, replies=Path(landing) / "gateway",
                     clock=lambda: at + timedelta(seconds=time.time() - started))  # fmt: skip
    con.close()
    print(json.dumps(result.counts), flush=True)


def _spawn(
    warehouse: Path, as_of: datetime, cfg: KannelConfig, base: int, landing: Path, started: float
):  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.fault_trials", "_deliver", str(warehouse),
         as_of.isoformat(), str(cfg.state), str(base), str(landing), repr(started)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _remaining(warehouse: Path) -> tuple[int, int]:
    con = duckdb.connect(str(warehouse), read_only=True)
    row = con.execute("""SELECT count(*) FILTER (WHERE status IN ('queued', 'submitting')),
        count(*) FILTER (WHERE status IN ('submitted', 'accepted')) FROM sends.messages""")
    out = row.fetchone()
    con.close()
    return out


def _carrier(cfg: KannelConfig) -> list[tuple[str, str]]:
    return kannel_box.carrier_messages(cfg.state / "carrier.log")


def _wait_stable(fn, quiet_s: float = 3.0, timeout: float = 120.0):
    last, since, deadline = fn(), time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = fn()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return last


def trial(
    i: int, fault: str, rng: random.Random, work: Path, cfg: KannelConfig, base: int, n: int,
    rx_box: list,
) -> dict:  # fmt: skip
    landing = work / "landing"
    program = replace(load_program(), global_control_share=0.0)
    as_of = AS_OF + timedelta(days=i)  # a new day: new idempotency keys, new texts
    warehouse = work / f"trial-{i}.duckdb"
    con = world(warehouse, n)
    decide(con, program, [replace(campaign(program), holdout_share=0.0)], as_of)
    expected = Counter(con.execute("SELECT phone_e164, text FROM sends.messages").fetchall())
    con.close()
    skip = len(_carrier(cfg))
    audit_from = _size(cfg.state / "access.log")
    at = rng.uniform(0.1, 0.9)
    started = time.time()
    if fault == "full_receiver_disk":
        _fill(_mount_small(landing / "gateway"))
        threading.Timer(rng.uniform(5.0, 25.0), _unfill, [landing / "gateway"]).start()
    if fault == "restart_bearerbox_link_down":
        kannel_box.down(cfg, ("carrier",))
    proc = _spawn(warehouse, as_of, cfg, base, landing, started)
    if fault == "restart_bearerbox_link_down":  # the carrier log stays still: go by time
        time.sleep(n * at / cfg.rate_per_s)
    else:
        target = skip + int(n * at)
        while proc.poll() is None and len(_carrier(cfg)) < target:
            time.sleep(0.02)
    if fault == "kill_sender" and proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    elif fault in ("kill_bearerbox", "kill_smsbox"):
        kannel_box.kill(cfg, fault.removeprefix("kill_"))
    elif fault == "restart_bearerbox_link_down":
        kannel_box.down(cfg, ("smsbox", "bearerbox"))
        kannel_box.up(cfg, carrier=False)
    proc.wait()
    if fault == "kill_receiver":  # while the DLRs of the batch are still arriving
        rx_box[0].send_signal(signal.SIGKILL)
        rx_box[0].wait()
        time.sleep(rng.uniform(0.5, 3.0))
        rx_box[0] = _receiver(cfg, landing)
    if fault in ("kill_bearerbox", "kill_smsbox"):
        kannel_box.down(cfg)
        kannel_box.up(cfg)
    if fault == "restart_bearerbox_link_down":
        time.sleep(rng.uniform(1.0, 2 * GRACE_S))  # past the grace while the link is down
        _spawn(warehouse, as_of, cfg, base, landing, started).wait()
        kannel_box.up(cfg)  # the link is back: the store goes out
    # deliveries until nothing is left to send (unanswered ones wait GRACE_S for receipts)
    for _ in range(30):
        _wait_stable(lambda: len(_carrier(cfg)), quiet_s=1.0, timeout=30)
        left, _ = _remaining(warehouse)
        if not left:
            break
        p = _spawn(warehouse, as_of, cfg, base, landing, started)
        p.wait()
        time.sleep(1.0)
    _wait_stable(lambda: len(_carrier(cfg)), quiet_s=2.0)
    con = duckdb.connect(str(warehouse))
    for tick in range(90):  # the receipts trail the sends (a full disk: Kannel retries each 10 s)
        if tick and tick % 10 == 0:  # the next scheduled run settles what Kannel's log shows
            con.close()
            _spawn(warehouse, as_of, cfg, base, landing, started).wait()
            con = duckdb.connect(str(warehouse))
        receipts.ingest(con, landing / "gateway")
        ledger = dict(con.execute("SELECT phone_e164, status FROM sends.messages").fetchall())
        kannel = _kannel_receipts(cfg.state / "access.log", audit_from)
        # what the ledger should say from the receipts Kannel got: delivered after a DLR 1,
        # accepted when the carrier took it and Kannel died before making the final receipt
        should = {p: "delivered" if kannel.get(p) == 1 else "accepted" for p in ledger}
        if ledger == should:
            break
        time.sleep(1.0)
    final = dict(con.execute("SELECT status, count(*) FROM sends.messages GROUP BY 1").fetchall())
    con.close()
    mismatched = sum(1 for p, status in ledger.items() if status != should[p])
    if fault == "full_receiver_disk":
        _unmount(landing / "gateway")
    got = Counter(_carrier(cfg)[skip:])
    return {
        "trial": i,
        "fault": fault,
        "at_share": round(at, 2),
        "messages": sum(expected.values()),
        "lost": sum(1 for m in expected if got[m] == 0),
        "duplicated": sum(c - 1 for m, c in got.items() if m in expected and c > 1),
        "unexpected": sum(c for m, c in got.items() if m not in expected),
        "ledger": final,
        "receipts_not_in_ledger": sum(
            1 for p in ledger if kannel.get(p) == 1 and ledger[p] != "delivered"
        ),
        "no_final_receipt_from_kannel": sum(1 for p in ledger if kannel.get(p) != 1),
        "reconciled": mismatched == 0,
    }


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


_DLR_LINE = re.compile(r"Receive DLR \[SMSC:carrier\].*?\[to:(\S+?)\] \[flags:[^\]]*:(\d+)\]")


def _kannel_receipts(access_log: Path, start: int) -> dict[str, int]:
    """Recipient -> the best receipt Kannel's access log shows since ``start`` (1 delivered
    beats 8 accepted by the carrier)."""
    with open(access_log, "rb") as f:
        f.seek(start)
        text = f.read().decode("utf-8", "replace")
    best: dict[str, int] = {}
    for to, dlr in _DLR_LINE.findall(text):
        best[to] = 1 if 1 in (best.get(to), int(dlr)) else int(dlr)
    return best


def _mount_small(path: Path, size: str = "2m") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    return path


def _fill(path: Path) -> None:
    """Take every free byte of the disk under ``path``."""
    with open(path / "filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"x" * 4096)


def _unfill(path: Path) -> None:
    (path / "filler").unlink(missing_ok=True)


def _unmount(path: Path) -> None:
    for _ in range(50):
        if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)


@contextmanager
def writer_lock_held(path: Path) -> Iterator[None]:
    """Another process holds ``path`` open for writing (DuckDB's file lock) while inside."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('locked', flush=True); time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        if holder.stdout.readline().strip() != "locked":
            raise RuntimeError(f"could not lock {path}")
        yield
    finally:
        holder.kill()
        holder.wait()


def check_locked_warehouse(work: Path, n: int) -> str:
    """Another process holds the warehouse: a clear error and no partial state."""
    from warehouse.connection import connect_built

    path = work / "locked.duckdb"
    world(path, n).close()
    with writer_lock_held(path):
        try:
            connect_built(path)
            return "FAIL: a second writer was let in"
        except ValueError as exc:
            message = str(exc)
    con = duckdb.connect(str(path), read_only=True)
    schemas = {r[0] for r in con.execute("SELECT schema_name FROM duckdb_schemas()").fetchall()}
    con.close()
    ok = "in use by another process" in message and "sends" not in schemas
    return ("ok: " if ok else "FAIL: ") + message.split(";")[0]


def check_full_outbox(work: Path, n: int) -> str:
    """The outbox disk fills up: a clear error, nothing half-written, then exactly once."""
    from send_jobs.gateways import OutboxGateway

    small = work / "small-disk"
    small.mkdir(exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(small)],
                      capture_output=True).returncode:  # fmt: skip
        return "skipped: cannot mount a small tmpfs (needs root)"
    program = replace(load_program(), global_control_share=0.0)
    con = world(work / "disk.duckdb", n)
    decide(con, program, [replace(campaign(program), holdout_share=0.0)], AS_OF)
    try:
        try:
            deliver(con, program, AS_OF, OutboxGateway(small))
            return "FAIL: no error on a full disk"
        except OSError as exc:
            error = str(exc)
        leftovers = os.listdir(small)
    finally:
        subprocess.run(["umount", str(small)])
    done = deliver(con, program, AS_OF, OutboxGateway(work / "outbox"))
    [manifest] = (work / "outbox").glob("*.manifest.json")
    count = json.loads(manifest.read_text())["count"]
    con.close()
    ok = not leftovers and count == n and done.counts.get("submitted") == n
    return f"{'ok' if ok else 'FAIL'}: {error}; left behind {leftovers}; then {count} sent once"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_deliver":
        deliver_once(argv[1], argv[2], argv[3], int(argv[4]), argv[5], float(argv[6]))
        return 0
    p = argparse.ArgumentParser(prog="python -m benchmarks.fault_trials", description=__doc__)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--messages", type=int, default=3000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--work", default="benchmarks/work/fault_trials")
    args = p.parse_args(argv)
    if not shutil.which("bearerbox"):
        raise SystemExit("Kannel is not installed: run `make kannel`")
    work = Path(args.work).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rng = random.Random(args.seed)
    base = kannel_box.free_base_port(31000)
    cfg = _config(work / "kannel", base)
    kannel_box.up(cfg)
    rx_box = [_receiver(cfg, work / "landing")]
    results = []
    try:
        for i in range(args.trials):
            r = trial(i, FAULTS[i % len(FAULTS)], rng, work, cfg, base, args.messages, rx_box)
            results.append(r)
            print(
                f"trial {i:2d} {r['fault']:<15} at {r['at_share']:.0%}: {r['messages']} messages,"
                f" lost {r['lost']}, duplicated {r['duplicated']}, unexpected {r['unexpected']},"
                f" ledger {r['ledger']}, receipts not in ledger {r['receipts_not_in_ledger']}",
                flush=True,
            )
            (work / f"trial-{i}.duckdb").unlink(missing_ok=True)
    finally:
        rx_box[0].terminate()
        kannel_box.down(cfg)
    out = Path(__file__).parent / "results" / "fault_trials.json"
    out.write_text(json.dumps({"config": {k: str(v) for k, v in asdict(cfg).items()
                                          if "password" not in k and "secret" not in k},
                               "trials": results}, indent=1) + "\n")  # fmt: skip
    print(f"warehouse locked by another writer: {check_locked_warehouse(work, 500)}")
    print(f"outbox disk full: {check_full_outbox(work, 500)}")
    print(f"{'fault':<28} {'trials':>6} {'messages':>9} {'lost':>5} {'dup':>4} "
          f"{'receipts missed':>15} {'no final DLR':>12} {'reconciled':>10}")  # fmt: skip
    for kind in FAULTS:
        rows = [r for r in results if r["fault"] == kind]
        if rows:
            print(f"{kind:<28} {len(rows):>6} {sum(r['messages'] for r in rows):>9} "
                  f"{sum(r['lost'] for r in rows):>5} {sum(r['duplicated'] for r in rows):>4} "
                  f"{sum(r['receipts_not_in_ledger'] for r in rows):>15} "
                  f"{sum(r['no_final_receipt_from_kannel'] for r in rows):>12} "
                  f"{sum(r['reconciled'] for r in rows):>6} of {len(rows)}")  # fmt: skip
    reconciled = sum(r["reconciled"] for r in results)
    print(f"ledger reconciled with Kannel's receipts in {reconciled} of {len(results)} trials")
    print(
        f"trials: {len(results)}, lost: {sum(r['lost'] for r in results)}, "
        f"duplicated: {sum(r['duplicated'] for r in results)}"
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
