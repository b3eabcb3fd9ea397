"""The link service under load on loopback: `retentext links` as a process, C concurrent
clients tapping N registered links (each tap a new connection, as phones make them), plus
unknown and malformed codes; then every click is checked to be journaled exactly once and
loaded into the warehouse once.

    python -m benchmarks.link_load [--clicks 10000] [--clients 50] [--codes 2000]

Writes benchmarks/results/link-load-<clicks>-<clients>.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np

from send_jobs import links, receipts
from send_jobs.kannel_box import free_base_port
from send_jobs.ledger import ensure_schema

RESULTS = Path(__file__).parent / "results"
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148"


def registered(con, folder: Path, n: int) -> list[str]:
    """n messages with links in the ledger, registered as a send would register them."""
    ensure_schema(con)
    links.ensure_secret(con)
    con.execute(
        f"""INSERT INTO sends.messages (message_id, idempotency_key, run_id, as_of, campaign_id,
            category, customer_id, phone_e164, text, encoding, segments, status, status_at,
            attempts, link_code, link_url)
        SELECT printf('%016x', i), 'key' || i, 'load', TIMESTAMP '2026-06-10 15:00', 'load',
            'marketing', 'C' || i, '+1212555' || lpad(i::VARCHAR, 4, '0'), 'x', 'GSM-7', 1,
            'submitted', TIMESTAMP '2026-06-10 15:00', 1,
            {links.code_sql("number")},
            'https://shop.example/p/' || (i % 7) || '?utm_source=retentext'
        FROM (SELECT i, {links.code_number_sql("'key' || i")} AS number
              FROM range({n}) AS t(i))"""
    )
    con.execute("CREATE TEMP TABLE every AS SELECT message_id FROM sends.messages")
    links.register(con, folder, "load-00001", datetime(2026, 6, 10, 15), "every")
    return [r[0] for r in con.execute("SELECT link_code FROM sends.messages").fetchall()]


def start_service(work: Path, port: int) -> subprocess.Popen:
    """`retentext links` as the CLI runs it; returns once it answers /health."""
    env = {**os.environ, "RETENTEXT_LINKS": str(work / "links"),
           "RETENTEXT_LANDING": str(work / "landing")}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestration.cli", "links", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if tap(port, "/health", None)[0] == 200:
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the link service did not start: {proc.stderr.read().decode()[-2000:]}")


def tap(port: int, path: str, user_agent: str | None) -> tuple[int, float]:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"User-Agent": user_agent} if user_agent else {})
        answer = conn.getresponse()
        answer.read()
        return answer.status, time.perf_counter() - started
    finally:
        conn.close()


def plan(codes: list[str], clicks: int, junk: int, seed: int) -> list[tuple[str, int]]:
    """(path, expected status): the clicks on registered codes, and junk unknown codes (404)
    and malformed ones (400), shuffled."""
    rng = random.Random(seed)
    good = [(f"/r/{rng.choice(codes)}", 302) for _ in range(clicks)]
    known = set(codes)
    unknown = []
    while len(unknown) < junk:
        code = "".join(rng.choice(links.ALPHABET) for _ in range(links.CODE_LENGTH))
        if code not in known:
            unknown.append((f"/r/{code}", 404))
    shapes = ("short", "x" * 12, "abc_defghij", "abc%20defgh", "..%2F..%2Fetc")
    malformed = [(f"/r/{c}", 400) for c in shapes]
    requests = good + unknown + [malformed[i % len(malformed)] for i in range(junk)]
    rng.shuffle(requests)
    return requests


def hammer(port: int, requests: list[tuple[str, int]], clients: int) -> dict:
    """Send ``requests`` from ``clients`` threads; returns statuses and latencies."""
    lock = threading.Lock()
    queue = list(reversed(requests))
    seen: list[tuple[str, int, int, float]] = []

    def client() -> None:
        while True:
            with lock:
                if not queue:
                    return
                path, expected = queue.pop()
            status, seconds = tap(port, path, PHONE)
            with lock:
                seen.append((path, expected, status, seconds))

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    latency = np.array([s for *_, s in seen]) * 1000
    return {
        "seen": seen,
        "wall_s": wall,
        "requests_per_s": len(seen) / wall,
        "latency_ms": {q: float(np.percentile(latency, p))
                       for q, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))},
    }  # fmt: skip


def run(clicks: int = 10_000, clients: int = 50, codes: int = 2_000, junk: int = 500,
        seed: int = 3, work: Path | None = None) -> dict:  # fmt: skip
    """The load test; returns its figures and checks (``exactly_once`` and friends)."""
    work = Path(work or tempfile.mkdtemp(prefix="link-load-"))
    con = duckdb.connect(str(work / "warehouse.duckdb"))
    registered_codes = registered(con, work / "links", codes)
    port = free_base_port() + 81
    service = start_service(work, port)
    try:
        requests = plan(registered_codes, clicks, junk, seed)
        result = hammer(port, requests, clients)
    finally:
        service.terminate()
        service.wait(timeout=30)
    seen = result.pop("seen")
    wrong = [(p, e, s) for p, e, s, _ in seen if e != s]
    journal = [json.loads(line) for f in sorted((work / "landing/gateway/clicks").glob("*.jsonl"))
               for line in f.read_text().splitlines()]  # fmt: skip
    sent = Counter(p.removeprefix("/r/") for p, e, _, _ in seen if e == 302)
    recorded = Counter(c["code"] for c in journal)
    loaded = receipts.ingest(con, work / "landing" / "gateway")
    in_warehouse = con.execute("SELECT count(*), count(DISTINCT click_id) FROM sends.clicks")
    rows, distinct = in_warehouse.fetchone()
    con.close()
    return {
        "clicks": clicks, "clients": clients, "registered_codes": codes,
        "unknown_codes": junk, "malformed_codes": junk, **result,
        "answered_as_expected": len(seen) - len(wrong), "answered_otherwise": wrong[:20],
        "statuses": dict(Counter(s for _, _, s, _ in seen)),
        "journaled": len(journal), "exactly_once": recorded == sent,
        "loaded": loaded["clicks"], "quarantined": loaded["quarantined"],
        "warehouse_rows": rows, "warehouse_distinct_click_ids": distinct,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clicks", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--codes", type=int, default=2_000)
    args = parser.parse_args()
    figures = run(args.clicks, args.clients, args.codes)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"link-load-{args.clicks}-{args.clients}.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
