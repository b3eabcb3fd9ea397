"""Analysis time for N assigned units: a synthetic shop of N customers loaded and built by
``retentext run``, one send run (all assigned: treatment, campaign holdout, global control),
the world's responses loaded and built a week later, then ``experiments.analysis.analyse``,
the guardrails, the program and the LTV cohorts (timed).

    python -m benchmarks.experiments --units 1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from datetime import timedelta
from pathlib import Path

import duckdb

from benchmarks.run import _retentext
from benchmarks.sends import AS_OF, campaign
from experiments.analysis import analyse
from experiments.cohorts import build_cohorts
from experiments.guardrails import measure_guardrails
from experiments.program import measure_program
from send_jobs.campaign_specs import load_program
from send_jobs.decide import decide
from send_jobs.deliver import deliver
from send_jobs.gateways import OutboxGateway
from simulator.experiment_world import write_experiment_world
from simulator.response import respond


def _pipeline(landing: Path, warehouse: Path, as_of) -> None:
    _retentext("run", "--landing", str(landing), "--warehouse", str(warehouse),
               "--as-of", as_of.isoformat())  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.experiments")
    p.add_argument("--units", type=int, default=1_000_000)
    p.add_argument("--work", default="benchmarks/work/experiments")
    args = p.parse_args(argv)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    db = work / "analysis-bench.duckdb"  # a file named experiments.duckdb shadows the schema
    landing = work / "landing"
    for old in (work / "outbox", landing):
        shutil.rmtree(old, ignore_errors=True)
    db.unlink(missing_ok=True)
    write_experiment_world(landing, AS_OF, customers=args.units)
    at = AS_OF + timedelta(days=8)
    _pipeline(landing, db, AS_OF)
    con = duckdb.connect(str(db))
    program = load_program()
    decide(con, program, [campaign(program)], AS_OF)
    deliver(con, program, AS_OF, OutboxGateway(work / "outbox"))
    respond(con, landing, {"bench": 0.2}, baseline_rate=0.15, seed=1)
    con.close()
    _pipeline(landing, db, at)
    con = duckdb.connect(str(db))
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
