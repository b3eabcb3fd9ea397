"""Send-side benchmark: decide + render + QA of N messages, and sustained sends into a real
Kannel with DLRs on, beside a bare concurrent HTTP client sending the same messages.

    python -m benchmarks.sends --render 1000000 --kannel 20000

Prints one line per figure and writes ``benchmarks/results/sends-<render>-<kannel>.json``.
The warehouse is synthetic (built in SQL): every customer opted in, inside their window and in
one campaign's audience, so every candidate is rendered; names mix GSM-7, accents (UCS-2) and
blanks (fallbacks).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from benchmarks.send_world import build_send_world
from send_jobs import kannel_box, receipts
from send_jobs.campaign_specs import load_program, parse_campaign
from send_jobs.config import KannelConfig
from send_jobs.decide import decide
from send_jobs.deliver import deliver
from send_jobs.gateways import KannelGateway, _RateLimit

HERE = Path(__file__).parent
AS_OF = datetime(2026, 6, 10, 15, 0, tzinfo=UTC)  # 11:00 in New York, a Wednesday


def campaign(program):
    return parse_campaign(
        {
            "id": "bench",
            "name": "Benchmark",
            "category": "marketing",
            "trigger": {"type": "customers"},
            "holdout_share": 0.10,
            "cooldown_days": 0,
            "variants": [
                {
                    "id": "vip",
                    "when": [{"field": "loyalty_tier", "op": "in", "value": ["gold", "platinum"]}],
                    "offer": "20% off",
                    "template": "{{ first_name }}, as a {{ loyalty_tier }} member: {{ offer }} "
                    "your next order {{ link }}",
                },
                {"id": "a", "weight": 1, "template": "{{ first_name }}, new in: {{ link }}"},
                {"id": "b", "weight": 1, "template": "Hi {{ first_name }}! Fresh picks {{ link }}"},
            ],
        },
        program,
    )


def world(path: Path, n: int):
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    build_send_world(con, n)
    return con


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_render(work: Path, n: int, program) -> dict:
    con = world(work / "render.duckdb", n)
    started = time.perf_counter()
    run = decide(con, program, [campaign(program)], AS_OF, dry_run=True)
    total = time.perf_counter() - started
    rendered = con.execute(
        "SELECT count(*) FROM sends.decisions WHERE rendered_text IS NOT NULL"
    ).fetchone()[0]
    con.close()
    s = run.seconds
    render_qa = s["render"] + s["qa"]
    return {
        "candidates": n,
        "rendered": rendered,
        "stage_seconds": {k: round(v, 2) for k, v in s.items()},
        "decide_seconds": round(total, 2),
        "render_qa_msgs_per_s": round(rendered / render_qa),
        "decide_msgs_per_s": round(n / total),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def _receiver(cfg: KannelConfig, landing: Path) -> subprocess.Popen:
    env = {**os.environ, "RETENTEXT_RECEIVER_SECRET": cfg.receiver_secret,
           "RETENTEXT_KANNEL_STATE": str(cfg.state)}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestration.cli", "receiver", "--port",
         str(cfg.receiver_port), "--landing", str(landing)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", cfg.receiver_port)) == 0:
                return proc
        time.sleep(0.1)
    raise RuntimeError("receiver did not start")


def _journal_lines(landing: Path) -> list[dict]:
    return [
        json.loads(line)
        for f in sorted((landing / "gateway" / "receipts").glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return predicate()


def bare_client(gateway: KannelGateway, rows: list[tuple], concurrency: int) -> float:
    """The same sendsms requests (same text, dlr-mask, dlr-url) from a plain thread pool with
    keep-alive connections and the same rate limit; no ledger, no journal."""
    local = threading.local()
    limit = _RateLimit(gateway.cfg.rate_per_s)

    def one(row):
        mid, to, text, enc = row
        limit.wait()
        conn = getattr(local, "c", None) or http.client.HTTPConnection(
            gateway.host, gateway.port, timeout=30
        )
        local.c = conn
        conn.request("GET", gateway.request_path(to, text, enc, mid))
        r = conn.getresponse()
        r.read()
        if r.will_close:
            conn.close()
            local.c = None
        return r.status

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        statuses = list(pool.map(one, rows))
    elapsed = time.perf_counter() - started
    assert all(s in (200, 202) for s in statuses), set(statuses)
    return elapsed


def _round(work: Path, r: int, cfg: KannelConfig, n: int, program, carrier: Path) -> dict:
    """One round: the bare client, then ours, on the same N messages; each side with its own
    receiver landing, waiting for the carrier and every DLR before the next side starts."""
    con = world(work / f"kannel-{r}.duckdb", n)
    prog = replace(program, global_control_share=0.0)
    decide(con, prog, [replace(campaign(prog), holdout_share=0.0)], AS_OF)
    rows = con.execute(
        "SELECT message_id, phone_e164, text, encoding FROM sends.messages"
    ).fetchall()
    sent = len(rows)
    gateway = KannelGateway(cfg, prog.sender)
    skip = len(kannel_box.carrier_messages(carrier))

    bare_landing = work / f"bare-landing-{r}"
    rx = _receiver(cfg, bare_landing)
    bare_s = bare_client(gateway, rows, cfg.concurrency)
    _wait(lambda: len(kannel_box.carrier_messages(carrier)) >= skip + sent, 120)
    _wait(lambda: len(_journal_lines(bare_landing)) >= 2 * sent, 300)
    rx.terminate()
    rx.wait()
    skip = len(kannel_box.carrier_messages(carrier))

    landing = work / f"landing-{r}"
    rx = _receiver(cfg, landing)
    started = time.perf_counter()
    delivery = deliver(con, prog, AS_OF, gateway, links=work / f"links-{r}")  # as a send run
    ours_s = time.perf_counter() - started
    _wait(lambda: len(kannel_box.carrier_messages(carrier)) >= skip + sent, 120)
    _wait(lambda: len(_journal_lines(landing)) >= 2 * sent, 600)
    lines = _journal_lines(landing)
    rx.terminate()
    rx.wait()
    stamps = sorted(datetime.fromisoformat(x["received_at"]) for x in lines)
    dlr_span = (stamps[-1] - stamps[0]).total_seconds() if len(stamps) > 1 else 0
    receipts.ingest(con, landing / "gateway")
    final = dict(con.execute("SELECT status, count(*) FROM sends.messages GROUP BY 1").fetchall())
    con.close()
    expected = Counter((to, text) for _, to, text, _ in rows)
    got = Counter(kannel_box.carrier_messages(carrier)[skip:])
    return {
        "bare_msgs_per_s": sent / bare_s,
        "ours_msgs_per_s": sent / ours_s,
        "ours_stage_seconds": {k: round(v, 2) for k, v in delivery.seconds.items()},
        "lost": sum(1 for m in expected if got[m] == 0),
        "duplicated": sum(c - 1 for m, c in got.items() if m in expected and c > 1),
        "unexpected": sum(1 for m in got if m not in expected),
        "dlr_callbacks": len(lines),
        "dlr_callbacks_per_s": len(lines) / dlr_span if dlr_span else 0.0,
        "reconciled": final == {"delivered": sent},
    }


def bench_kannel(work: Path, n: int, program, rounds: int) -> dict:
    if not shutil.which("bearerbox"):
        raise SystemExit("Kannel is not installed: run `make kannel`")
    state = work / "kannel"
    shutil.rmtree(state, ignore_errors=True)
    for old in work.glob("*landing-*"):
        shutil.rmtree(old)
    cfg = KannelConfig.from_env({}).on_ports(
        state, kannel_box.free_base_port(31000), admin_password="bench-admin",
        sendsms_password="bench-send", receiver_secret="bench-receiver", rate_per_s=0,
    )  # fmt: skip
    kannel_box.up(cfg)
    try:
        results = [_round(work, r, cfg, n, program, state / "carrier.log") for r in range(rounds)]
    finally:
        kannel_box.down(cfg)
    bare = statistics.median(x["bare_msgs_per_s"] for x in results)
    ours = statistics.median(x["ours_msgs_per_s"] for x in results)
    return {
        "messages_per_round": n,
        "rounds": rounds,
        "concurrency": cfg.concurrency,
        "bare_client_msgs_per_s": round(bare),
        "ours_msgs_per_s": round(ours),
        "ours_vs_bare": round(ours / bare, 3),
        "lost": sum(x["lost"] for x in results),
        "duplicated": sum(x["duplicated"] for x in results),
        "unexpected_at_carrier": sum(x["unexpected"] for x in results),
        "dlr_callbacks": sum(x["dlr_callbacks"] for x in results),
        "dlr_callbacks_per_s": round(statistics.median(x["dlr_callbacks_per_s"] for x in results)),
        "reconciled": all(x["reconciled"] for x in results),
        "per_round": [
            {k: (round(v) if isinstance(v, float) else v) for k, v in x.items()} for x in results
        ],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sends", description=__doc__)
    p.add_argument("--render", type=int, default=1_000_000, help="candidates to decide/render")
    p.add_argument("--kannel", type=int, default=20_000, help="messages through Kannel (0: skip)")
    p.add_argument("--rounds", type=int, default=3, help="alternating bare/ours rounds")
    p.add_argument("--work", default="benchmarks/work/sends")
    args = p.parse_args(argv)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    program = load_program()
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "duckdb": duckdb.__version__,
    }
    if args.render:
        result["render"] = bench_render(work, args.render, program)
        r = result["render"]
        print(f"decide {r['candidates']:,} candidates: {r['decide_seconds']}s "
              f"({r['decide_msgs_per_s']:,}/s); stages {r['stage_seconds']}")  # fmt: skip
        print(f"render + QA: {r['render_qa_msgs_per_s']:,} messages/s "
              f"({r['rendered']:,} rendered); peak RSS {r['peak_rss_mb']} MB")  # fmt: skip
    if args.kannel:
        result["kannel"] = k = bench_kannel(work, args.kannel, program, args.rounds)
        print(f"kannel, {k['rounds']} rounds x {k['messages_per_round']:,} messages, "
              f"{k['concurrency']} connections, medians: bare client "
              f"{k['bare_client_msgs_per_s']:,}/s, ours {k['ours_msgs_per_s']:,}/s "
              f"({k['ours_vs_bare']:.0%} of bare)")  # fmt: skip
        print(f"at the carrier: lost {k['lost']}, duplicated {k['duplicated']}, "
              f"unexpected {k['unexpected_at_carrier']}")  # fmt: skip
        print(f"DLR callbacks: {k['dlr_callbacks']:,} at {k['dlr_callbacks_per_s']:,}/s; every "
              f"message delivered in the ledger: {k['reconciled']}")  # fmt: skip
    out = HERE / "results" / f"sends-{args.render}-{args.kannel}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
