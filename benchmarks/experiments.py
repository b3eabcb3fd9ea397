"""Analysis time for N assigned units: a synthetic world of N customers, one send run (all
assigned: treatment, campaign holdout, global control), the world's responses, then
``experiments.analysis.analyse`` and the LTV cohorts.

    python -m benchmarks.experiments --units 1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import timedelta
from pathlib import Path

import duckdb

from benchmarks.sends import AS_OF, campaign
from experiments.analysis import analyse
from experiments.cohorts import build_cohorts
from experiments.guardrails import measure_guardrails
from experiments.program import measure_program
from send_jobs.campaign_specs import load_program
from send_jobs.decide import decide
from send_jobs.deliver import deliver
from send_jobs.gateways import OutboxGateway
from simulator.response import respond
from simulator.send_world import build_send_world


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.experiments")
    p.add_argument("--units", type=int, default=1_000_000)
    p.add_argument("--work", default="benchmarks/work/experiments")
    args = p.parse_args(argv)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    db = work / "analysis-bench.duckdb"  # a file named experiments.duckdb shadows the schema
    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    build_send_world(con, args.units)
    program = load_program()
    decide(con, program, [campaign(program)], AS_OF)
    deliver(con, program, AS_OF, OutboxGateway(work / "outbox"))
    respond(con, {"bench": 0.2}, baseline_rate=0.15, seed=1)
    at = AS_OF + timedelta(days=8)
    seconds = {}
    for name, step in (
        ("analysis", lambda: analyse(con, at, {"bench": 0.10})),
        ("guardrails", lambda: measure_guardrails(con, at)),
        ("program", lambda: measure_program(con, at, program)),
        ("cohorts", lambda: build_cohorts(con, at)),
    ):  # fmt: skip
        started = time.perf_counter()
        value = step()
        seconds[name] = round(time.perf_counter() - started, 2)
        if name == "analysis":
            results = value
        elif name == "cohorts":
            cohort_rows = value
    units = con.execute("SELECT count(*) FROM experiments.units").fetchone()[0]
    figures = {
        "units": units,
        "result_rows": len(results),
        **{f"{name}_seconds": s for name, s in seconds.items()},
        "cohort_rows": cohort_rows,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(f"analysis of {units:,} assigned units: {seconds['analysis']:.1f}s ({len(results)} "
          f"result rows); guardrails {seconds['guardrails']:.1f}s; program "
          f"{seconds['program']:.1f}s; LTV cohorts and curves {seconds['cohorts']:.1f}s; "
          f"peak RSS {figures['peak_rss_mb']} MB")  # fmt: skip
    out = Path(__file__).parent / "results" / f"experiments-{args.units}.json"
    out.write_text(json.dumps(figures, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
