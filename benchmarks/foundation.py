"""Time and peak memory of `retentext simulate` and of ingestion, next to a bare DuckDB read.

    python -m benchmarks.foundation --customers 100000 [--days 730] [--work DIR]

Each stage runs in its own process (so peak RSS is that stage's own) and prints one JSON
line; the parent prints a table and writes ``benchmarks/results/foundation-<N>.json``.
Stages: simulate (2 years by default), ingest (`retentext run --skip-features`: Dagster
materializations, validation, quarantine, GE checks), features (the dbt build with its tests
through Dagster; rows = raw rows it reads), and `duckdb_read` (plain ``read_csv``/``read_json`` of
the same files into tables with no validation: the floor ingestion is compared with).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

SOURCES = ["customers", "products", "orders", "events", "consent"]


def _peak_mb() -> float:
    """Peak RSS of this stage's process or of any process it ran (dbt runs in one)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def stage_simulate(work: Path, customers: int, days: int) -> dict:
    from simulator.writer import simulate

    t = time.perf_counter()
    summary = simulate(work / "landing", customers, date(2024, 1, 1), days, seed=1)
    rows = sum(v["rows"] for v in summary.values())
    return {
        "seconds": time.perf_counter() - t,
        "rows": rows,
        "per_source": {k: v["rows"] for k, v in summary.items()},
    }


def stage_ingest(work: Path, customers: int, days: int) -> dict:
    import os

    os.environ["RETENTEXT_PARTITIONS_START"] = "2024-01-01"
    from orchestration.cli import main

    warehouse = work / "warehouse.duckdb"
    warehouse.unlink(missing_ok=True)
    as_of = (date(2024, 1, 1) + timedelta(days=days)).isoformat() + "T00:00:00Z"
    t = time.perf_counter()
    args = ["run", "--landing", str(work / "landing"), "--as-of", as_of]
    code = main([*args, "--warehouse", str(warehouse), "--skip-features"])
    seconds = time.perf_counter() - t
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    read = con.execute("SELECT sum(rows_read) FROM raw.load_files").fetchone()[0]
    return {"seconds": seconds, "rows": int(read), "exit": code}


def stage_features(work: Path, customers: int, days: int) -> dict:
    """`retentext run` again: nothing new to load, so this is the dbt build (models + tests)
    through Dagster, as of the end of the world."""
    import os

    os.environ["RETENTEXT_PARTITIONS_START"] = "2024-01-01"
    import duckdb

    from orchestration.cli import main

    as_of = (date(2024, 1, 1) + timedelta(days=days)).isoformat() + "T00:00:00Z"
    t = time.perf_counter()
    code = main(
        [
            "run",
            "--landing",
            str(work / "landing"),
            "--as-of",
            as_of,
            "--warehouse",
            str(work / "warehouse.duckdb"),
        ]
    )
    seconds = time.perf_counter() - t
    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    rows = con.execute("SELECT sum(rows_accepted) FROM raw.load_files").fetchone()[0]
    return {"seconds": seconds, "rows": int(rows), "exit": code}


def stage_duckdb_read(work: Path, customers: int, days: int) -> dict:
    import duckdb

    db = work / "bare.duckdb"
    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    t = time.perf_counter()
    rows = 0
    for s in SOURCES:
        files = str(work / "landing" / s)
        reader = (
            f"read_json('{files}/*.jsonl', format='newline_delimited')"
            if s == "events"
            else f"read_csv('{files}/*.csv', header=true)"
        )
        con.execute(f"CREATE TABLE {s} AS SELECT * FROM {reader}")
        rows += con.execute(f"SELECT count(*) FROM {s}").fetchone()[0]
    return {"seconds": time.perf_counter() - t, "rows": rows}


STAGES = {
    "simulate": stage_simulate,
    "ingest": stage_ingest,
    "features": stage_features,
    "duckdb_read": stage_duckdb_read,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--work", default="benchmarks/work")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work) / str(args.customers)
    work.mkdir(parents=True, exist_ok=True)
    if args.stage:  # child process: one stage, one JSON line
        result = STAGES[args.stage](work, args.customers, args.days)
        result["peak_rss_mb"] = round(_peak_mb(), 1)
        print(json.dumps(result))
        return
    results = {}
    for name in STAGES:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.foundation",
                "--stage",
                name,
                "--customers",
                str(args.customers),
                "--days",
                str(args.days),
                "--work",
                args.work,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[name]
        print(
            f"{name:12s} {r['seconds']:8.1f} s  {r['rows']:>12,} rows  "
            f"{r['rows'] / r['seconds']:>12,.0f} rows/s  peak {r['peak_rss_mb']:8.0f} MB",
            flush=True,
        )
    ratio = results["ingest"]["seconds"] / results["duckdb_read"]["seconds"]
    print(f"ingest / bare DuckDB read: {ratio:.1f}x")
    features_ratio = results["features"]["seconds"] / results["ingest"]["seconds"]
    print(f"dbt features / ingest: {features_ratio:.2f}x")
    record = {
        "customers": args.customers,
        "days": args.days,
        "stages": results,
        "ingest_over_bare_read": round(ratio, 2),
        "features_over_ingest": round(features_ratio, 2),
        "machine": f"{platform.machine()} {platform.system()}, "
        f"{__import__('os').cpu_count()} cores, Python {platform.python_version()}",
    }
    path = Path(__file__).parent / "results" / f"foundation-{args.customers}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
