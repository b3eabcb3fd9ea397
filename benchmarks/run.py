"""The scale harness: a nightly run at N customers, stage by stage, beside the DuckDB floor.

    python -m benchmarks.run --customers 1000000 [--days 730] [--stages ingest,features,...]
    python -m benchmarks.run --customers 30000 --smoke      # make test: a short world

Stages (each in its own process, so its peak RSS is its own; `simulate` is cached per size):
  simulate   the world's landing files (days 1..N-1; day N is kept aside as "the next day")
  floor_before  benchmarks/floor.sql on the same files, timed only (see floor)
  ingest     `retentext run --skip-features`: Dagster, validation, quarantine, GE checks
  features   the dbt build (models + tests) through Dagster, as of the end of day N-1
  floor      floor.sql again after features, then a row-for-row check against the marts;
             the ratio divides by the mean of both runs (this box's speed drifts in minutes)
  nightly_ingest, nightly_features   day N arrives: its ingest and the incremental dbt build
  send       audience + guardrails + render + QA of every campaign, dry run, day N 15:00 UTC
  render     decide + render + QA of N synthetic candidates, all rendered (throughput at scale)
  experiments  a real run through the outbox, simulated responses, then the timed analysis
             (units, estimates, LTV cohorts) 8 days later
  reports    the HTML reports from those tables

Writes ``benchmarks/results/<customers>.json`` and ``.md`` (``--smoke``: under the work
folder) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
DBT_TARGET = ROOT / "dbt_project" / "target"
START = date(2024, 1, 1)
SOURCES = ["customers", "products", "orders", "events", "consent"]
# the marts benchmarks/floor.sql recomputes in plain SQL, compared row by row
FLOOR_MARTS = [
    "dim_customers",
    "customer_replenishment",
    "customer_consent",
    "customer_category_affinity",
]
STAGES = [
    "simulate",
    "floor_before",
    "ingest",
    "features",
    "floor",
    "nightly_ingest",
    "nightly_features",
    "send",
    "nightly_dagster",
    "render",
    "experiments",
    "reports",
]
# the daemon's start-up alone is longer than a smoke world's nightly; tests/test_dagster_daemon
# runs the same chain
NOT_IN_SMOKE = {"nightly_dagster"}
NIGHTLY = [
    "ingest",
    "features",
    "nightly_ingest",
    "nightly_features",
    "send",
    "experiments",
    "reports",
]  # the product's own run: its peak RSS is the one with a target


class World:
    """Paths and times of one benchmark world."""

    def __init__(self, work: Path, customers: int, days: int):
        self.root = work / f"{customers}-{days}d"
        self.customers, self.days = customers, days
        self.landing = self.root / "landing"
        self.next_day = self.root / "next_day"  # day N, moved aside until nightly_ingest
        self.warehouse = self.root / "warehouse.duckdb"
        # a file named floor.duckdb would shadow the schema `floor`
        self.floor_db = self.root / "floor-run.duckdb"
        self.last = START + timedelta(days=days - 1)
        # as of midnight after day N-1 (the backfill) and after day N (the nightly run)
        self.backfill_as_of = datetime.combine(self.last, datetime.min.time(), UTC)
        self.nightly_as_of = self.backfill_as_of + timedelta(days=1)

    def manifest(self) -> dict | None:
        path = self.root / "world.json"
        return json.loads(path.read_text()) if path.exists() else None


def _peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _retentext(*args: str) -> None:
    from orchestration.cli import main

    code = main(list(args))
    if code:
        raise SystemExit(f"retentext {' '.join(args)} exited {code}")


def _stage_env(world: World) -> dict[str, str]:
    """The environment of a stage's process: the world's paths and partitions, and an
    ephemeral Dagster instance (no DAGSTER_HOME)."""
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    return env | {
        "RETENTEXT_PARTITIONS_START": START.isoformat(),
        "RETENTEXT_WAREHOUSE": str(world.warehouse),
        "RETENTEXT_LANDING": str(world.landing),
    }


def stage_simulate(world: World) -> dict:
    from simulator.writer import simulate

    manifest = world.manifest()
    if manifest and "peak_rss_mb" in manifest:  # older manifests lack it: simulate again
        return {
            "seconds": manifest["seconds"],
            "rows": manifest["rows"],
            "cached": True,
            "peak_rss_mb": manifest["peak_rss_mb"],
        }
    shutil.rmtree(world.root, ignore_errors=True)
    started = time.perf_counter()
    summary = simulate(world.landing, world.customers, START, world.days, seed=1)
    seconds = time.perf_counter() - started
    for source in SOURCES:  # day N waits aside for the nightly stages
        (world.next_day / source).mkdir(parents=True, exist_ok=True)
        for f in (world.landing / source).glob(f"{world.last.isoformat()}*"):
            f.rename(world.next_day / source / f.name)
    rows = sum(v["rows"] for v in summary.values())
    manifest = {
        "seconds": seconds,
        "rows": rows,
        "per_source": {k: v["rows"] for k, v in summary.items()},
        "peak_rss_mb": _peak_mb(),  # kept with the world: later runs reuse it, not redo it
    }
    (world.root / "world.json").write_text(json.dumps(manifest))
    return {"seconds": seconds, "rows": rows, "cached": False}


def _raw_rows(world: World, column: str = "rows_read") -> int:
    import duckdb

    con = duckdb.connect(str(world.warehouse), read_only=True)
    try:
        return int(con.execute(f"SELECT sum({column}) FROM raw.load_files").fetchone()[0] or 0)
    finally:
        con.close()


def _as_simulated(world: World) -> None:
    """The landing as simulated: without day N and the responses to the sends, which a
    previous harness run may have added."""
    for source in SOURCES:
        for f in (world.landing / source).glob(f"{world.last.isoformat()}*"):
            f.unlink()
    for f in (world.landing / "orders").glob("*.resp-*"):
        f.unlink()


def _new_warehouse(world: World, dbt_target: Path = DBT_TARGET) -> None:
    """No warehouse, and no dbt parse state kept for its path: the first build then parses
    the whole project, as a first build into a new warehouse does (the state a previous
    harness run left for this path would spare the features stage that)."""
    from warehouse.dbt_build import parse_state

    world.warehouse.unlink(missing_ok=True)
    parse_state(dbt_target, str(world.warehouse)).unlink(missing_ok=True)


def stage_ingest(world: World) -> dict:
    _as_simulated(world)
    _new_warehouse(world)
    started = time.perf_counter()
    _retentext("run", "--as-of", world.backfill_as_of.isoformat(), "--skip-features")
    return {"seconds": time.perf_counter() - started, "rows": _raw_rows(world)}


def dbt_build_figures(target: Path, since: float, slowest: int = 5) -> dict:
    """The newest dbt build folder written after ``since`` (a wall-clock timestamp): dbt's
    own elapsed time and its slowest nodes, from its run_results.json. The stage's time less
    this is what Dagster, the imports and dbt's start-up and parse cost. Another build
    finishing in the same target meanwhile would be taken instead: run the harness alone."""
    builds = [p for p in target.glob("features-*/run_results.json") if p.stat().st_mtime >= since]
    if not builds:
        return {}
    results = json.loads(max(builds, key=lambda p: p.stat().st_mtime).read_text())
    nodes = sorted(results["results"], key=lambda r: -r["execution_time"])[:slowest]
    return {
        "dbt_seconds": results["elapsed_time"],
        # the node's name after "<type>.<project>." (a test keeps its hash suffix)
        "slowest_nodes": [
            [r["unique_id"].split(".", 2)[2], round(r["execution_time"], 2)] for r in nodes
        ],
    }


def stage_features(world: World) -> dict:
    since, started = time.time(), time.perf_counter()
    _retentext("run", "--as-of", world.backfill_as_of.isoformat())
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rows": _raw_rows(world, "rows_accepted"),
        **dbt_build_figures(DBT_TARGET, since),
    }


def floor_sql(world: World, as_of: datetime) -> str:
    text = (HERE / "floor.sql").read_text()
    for key, value in {
        "landing": world.landing,
        "seeds": ROOT / "dbt_project" / "seeds",
        "as_of": as_of.strftime("%Y-%m-%d %H:%M:%S"),
    }.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def compare_floor(con) -> dict[str, dict]:
    """Rows of each public mart that differ between the floor and the dbt build (both ways,
    every column, duplicates counted)."""
    out = {}
    for mart in FLOOR_MARTS:
        cols = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_catalog = 'wh' "
                "AND table_schema = 'marts' AND table_name = ? ORDER BY ordinal_position",
                [mart],
            ).fetchall()
        ]
        c = ", ".join(f'"{x}"' for x in cols)
        a, b = (f"wh.marts.{mart}", f"floor.{mart}")
        only = [
            con.execute(
                f"SELECT count(*) FROM (SELECT {c} FROM {x} EXCEPT ALL SELECT {c} FROM {y})"
            ).fetchone()[0]
            for x, y in ((a, b), (b, a))
        ]
        rows = con.execute(f"SELECT count(*) FROM {b}").fetchone()[0]
        out[mart] = {"rows": rows, "only_in_dbt": only[0], "only_in_floor": only[1]}
    return out


def _floor(world: World, compare: bool) -> dict:
    import duckdb

    world.floor_db.unlink(missing_ok=True)
    con = duckdb.connect(str(world.floor_db))
    started = time.perf_counter()
    con.execute(floor_sql(world, world.backfill_as_of))
    seconds = time.perf_counter() - started
    rows = sum(con.execute(f"SELECT count(*) FROM floor.{s}").fetchone()[0] for s in SOURCES)
    result = {"seconds": seconds, "rows": rows}
    if compare:
        con.execute(f"ATTACH '{world.warehouse}' AS wh (READ_ONLY)")
        result["agreement"] = compare_floor(con)
    con.close()
    world.floor_db.unlink(missing_ok=True)
    return result


def stage_floor_before(world: World) -> dict:
    """The floor once before ingest too: this box's speed drifts by a fifth or more within
    minutes, so the ratio's denominator is the mean of a run on each side of the pipeline.
    Ingest now reads landing files the page cache holds, as the floor after it always did
    (a cold read of the 1M events, 5.1 GB, took 5 s)."""
    _as_simulated(world)
    return _floor(world, compare=False)


def stage_floor(world: World) -> dict:
    return _floor(world, compare=True)


def stage_nightly_ingest(world: World) -> dict:
    from benchmarks.nightly_dagster import before_nightly

    shutil.copy2(world.warehouse, before_nightly(world.warehouse))  # for nightly_dagster
    for source in SOURCES:
        for f in (world.next_day / source).iterdir():
            shutil.copy2(f, world.landing / source / f.name)
    before = _raw_rows(world)
    started = time.perf_counter()
    _retentext("run", "--as-of", world.nightly_as_of.isoformat(), "--skip-features")
    return {"seconds": time.perf_counter() - started, "rows": _raw_rows(world) - before}


def stage_nightly_features(world: World) -> dict:
    import duckdb

    since, started = time.time(), time.perf_counter()
    _retentext("run", "--as-of", world.nightly_as_of.isoformat())
    seconds = time.perf_counter() - started
    con = duckdb.connect(str(world.warehouse), read_only=True)
    new = con.execute(
        "SELECT count(*) FROM marts.fct_events WHERE partition_date = ?", [world.last]
    ).fetchone()[0]
    con.close()
    return {
        "seconds": seconds,
        "rows": _raw_rows(world, "rows_accepted"),
        "new_day_events": new,
        **dbt_build_figures(DBT_TARGET, since),
    }


def _send_time(world: World) -> datetime:
    return world.nightly_as_of + timedelta(hours=15)  # 10:00 in New York, 16:00 in Paris


def stage_send(world: World) -> dict:
    from send_jobs.campaign_specs import load_campaigns, load_program
    from send_jobs.decide import decide
    from warehouse.connection import connect_built

    program = load_program()
    con = connect_built(world.warehouse)
    started = time.perf_counter()
    run = decide(con, program, load_campaigns(program=program), _send_time(world), dry_run=True)
    seconds = time.perf_counter() - started
    rendered = con.execute(
        "SELECT count(*) FROM sends.decisions WHERE run_id = ? AND rendered_text IS NOT NULL",
        [run.run_id],
    ).fetchone()[0]
    candidates = sum(run.counts.values())
    con.close()
    return {
        "seconds": seconds,
        "rows": candidates,
        "rendered": rendered,
        "stage_seconds": {k: round(v, 2) for k, v in run.seconds.items()},
    }


def stage_nightly_dagster(world: World) -> dict:
    """nightly_ingest, nightly_features and send again, driven by the dagster-daemon."""
    from benchmarks import nightly_dagster

    figures = nightly_dagster.run(
        world.root / "dagster-nightly", nightly_dagster.before_nightly(world.warehouse),
        world.landing, world.last.isoformat(), START.isoformat(), world.nightly_as_of,
        _send_time(world),
    )  # fmt: skip
    return {"rows": 0, **figures}


def stage_render(world: World) -> dict:
    from benchmarks.sends import bench_render
    from send_jobs.campaign_specs import load_program

    figures = bench_render(world.root, world.customers, load_program())
    (world.root / "render.duckdb").unlink(missing_ok=True)
    return {
        "seconds": figures["decide_seconds"],
        "rows": figures["candidates"],
        "render_qa_msgs_per_s": figures["render_qa_msgs_per_s"],
        "stage_seconds": figures["stage_seconds"],
    }


def stage_experiments(world: World) -> dict:
    """The send run, the world's responses loaded and the features rebuilt a week later (not
    timed), then the measurement (timed)."""
    from experiments.run import measure
    from send_jobs.campaign_specs import load_campaigns, load_program
    from send_jobs.decide import decide
    from send_jobs.deliver import deliver
    from send_jobs.gateways import OutboxGateway
    from simulator.response import respond
    from warehouse.connection import connect_built

    program = load_program()
    campaigns = load_campaigns(program=program)
    con = connect_built(world.warehouse)
    at = _send_time(world)
    decide(con, program, campaigns, at)
    shutil.rmtree(world.root / "outbox", ignore_errors=True)
    deliver(con, program, at, OutboxGateway(world.root / "outbox"))
    respond(con, world.landing, {c.id: 0.2 for c in campaigns}, baseline_rate=0.1, seed=1)
    con.close()
    measured_at = at + timedelta(days=8)
    _retentext("run", "--as-of", measured_at.isoformat())
    con = connect_built(world.warehouse)
    started = time.perf_counter()
    measured = measure(con, measured_at)
    results, units, cohort_rows = measured.results, measured.units, measured.cohort_rows
    seconds = time.perf_counter() - started
    orders = con.execute("SELECT count(*) FROM marts.fct_orders").fetchone()[0]
    con.close()
    return {
        "seconds": seconds,
        "rows": orders,
        "units": units,
        "result_rows": len(results),
        "cohort_rows": cohort_rows,
    }


def stage_reports(world: World) -> dict:
    from experiments.reports import write_reports
    from warehouse.connection import connect_built

    con = connect_built(world.warehouse)
    rows = con.execute("SELECT count(*) FROM experiments.campaign_results").fetchone()[0]
    started = time.perf_counter()
    paths = write_reports(con, world.root / "reports", f"{_send_time(world):%Y-%m-%d} UTC")
    seconds = time.perf_counter() - started
    con.close()
    return {
        "seconds": seconds,
        "rows": rows,
        "bytes": sum(p.stat().st_size for p in paths.values()),
    }


def machine() -> str:
    import duckdb

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores, {mem:.0f} GB, "
        f"Python {platform.python_version()}, DuckDB {duckdb.__version__}"
    )


def summarise(world: World, stages: dict[str, dict]) -> dict:
    manifest = world.manifest() or {"per_source": {}}
    for s in stages.values():
        s["rows_per_s"] = round(s["rows"] / s["seconds"]) if s.get("seconds") else None
    t = {k: v["seconds"] for k, v in stages.items()}
    floors = [t[k] for k in ("floor_before", "floor") if k in t]
    floor = sum(floors) / len(floors) if floors else None
    pipeline = t["ingest"] + t["features"] if {"ingest", "features"} <= t.keys() else None
    nightly_peaks = [stages[k]["peak_rss_mb"] for k in NIGHTLY if k in stages]
    return {
        "customers": world.customers,
        "days": world.days,
        "order_lines": manifest["per_source"].get("orders"),
        "events": manifest["per_source"].get("events"),
        "stages": stages,
        "floor_seconds": floor,  # the mean of the floor's runs
        "floor_runs": floors,
        "ratio_ingest_features": round(pipeline / floor, 2) if floor and pipeline else None,
        "floor_agrees": all(
            m["only_in_dbt"] == 0 and m["only_in_floor"] == 0
            for m in stages.get("floor", {}).get("agreement", {}).values()
        )
        if "floor" in stages
        else None,
        "incremental_over_full": round(t["nightly_features"] / t["features"], 3)
        if {"nightly_features", "features"} <= t.keys()
        else None,
        "incremental_over_full_inside_dbt": _inside_dbt_ratio(stages),
        **_nightly_paths(t),
        "render_msgs_per_s": stages.get("render", {}).get("render_qa_msgs_per_s"),
        "peak_rss_mb": max(nightly_peaks) if nightly_peaks else None,
        "machine": machine(),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),  # a label, not logic
    }


def _nightly_paths(t: dict[str, float]) -> dict:
    """One new day to send decisions: the CLI's stages, and the same through the daemon."""
    cli_stages = ("nightly_ingest", "nightly_features", "send")
    if not set(cli_stages) <= t.keys():
        return {}
    cli = sum(t[k] for k in cli_stages)
    dagster = t.get("nightly_dagster")
    return {
        "nightly_cli_seconds": round(cli, 2),
        "nightly_dagster_seconds": round(dagster, 2) if dagster else None,
        "dagster_over_cli": round(dagster / cli, 2) if dagster else None,
    }


def _inside_dbt_ratio(stages: dict[str, dict]) -> float | None:
    full = stages.get("features", {}).get("dbt_seconds")
    nightly = stages.get("nightly_features", {}).get("dbt_seconds")
    return round(nightly / full, 3) if full and nightly else None


def markdown(result: dict) -> str:
    lines = [
        f"### {result['customers']:,} customers, {result['days']} days "
        f"({result['order_lines'] or 0:,} order lines, {result['events'] or 0:,} events)",
        "",
        f"Machine: {result['machine']}.",
        "",
        "| stage | seconds | rows | rows/s | peak RSS MB |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, s in result["stages"].items():
        rate = f"{s['rows_per_s']:,}" if s.get("rows_per_s") else ""
        lines.append(
            f"| {name} | {s['seconds']:.1f} | {s['rows']:,} | {rate} | {s['peak_rss_mb']:,.0f} |"
        )
    lines.append("")
    facts = [
        ("floor (benchmarks/floor.sql), mean of its runs", result["floor_seconds"], "{:.1f} s"),
        (
            "floor runs (before ingest, after features), s",
            ", ".join(f"{x:.1f}" for x in result.get("floor_runs") or []) or None,
            "{}",
        ),
        ("(ingest + features) / floor", result["ratio_ingest_features"], "{}"),
        ("floor agrees with the dbt marts row for row", result["floor_agrees"], "{}"),
        ("incremental nightly dbt build / full build", result["incremental_over_full"], "{}"),
        (
            "the same inside dbt (its own elapsed time)",
            result.get("incremental_over_full_inside_dbt"),
            "{}",
        ),
        *[
            (
                f"slowest dbt nodes of the {name.replace('_', ' ')} build, s",
                ", ".join(f"{n} {x}" for n, x in result["stages"][name].get("slowest_nodes", []))
                or None,
                "{}",
            )
            for name in ("features", "nightly_features")
            if name in result["stages"]
        ],
        ("render + QA, messages/s", result["render_msgs_per_s"], "{:,}"),
        ("peak RSS of the nightly run (ingest to reports), MB", result["peak_rss_mb"], "{:,.0f}"),
    ]
    lines += [f"- {label}: {fmt.format(v)}" for label, v, fmt in facts if v is not None]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--days", type=int, help="default 730; 8 with --smoke")
    p.add_argument("--stages", help="comma-separated subset (default: all, in order)")
    p.add_argument("--smoke", action="store_true", help="a short world; results stay in --work")
    p.add_argument("--work", default=str(HERE / "work"))
    p.add_argument("--stage", help=argparse.SUPPRESS)  # child process: one stage, one JSON line
    args = p.parse_args(argv)
    days = args.days or (8 if args.smoke else 730)
    world = World(Path(args.work).resolve(), args.customers, days)
    world.root.mkdir(parents=True, exist_ok=True)
    if args.stage:
        result = globals()[f"stage_{args.stage}"](world)
        result.setdefault("peak_rss_mb", round(_peak_mb(), 1))  # a cached world keeps its own
        print("RESULT " + json.dumps(result, default=str))
        return 0
    default = [s for s in STAGES if not (args.smoke and s in NOT_IN_SMOKE)]
    chosen = args.stages.split(",") if args.stages else default
    unknown = set(chosen) - set(STAGES)
    if unknown:
        p.error(f"unknown stages: {', '.join(sorted(unknown))} (known: {', '.join(STAGES)})")
    stages: dict[str, dict] = {}
    for name in [s for s in STAGES if s in chosen]:
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--stage",
            name,
            "--customers",
            str(args.customers),
            "--days",
            str(days),
            "--work",
            args.work,
        ]
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=_stage_env(world))
        found = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
        if out.returncode or not found:
            sys.stderr.write(out.stdout[-4000:] + out.stderr[-4000:])
            print(f"stage {name} failed (exit {out.returncode})", file=sys.stderr)
            return 1
        stages[name] = json.loads(found[-1][len("RESULT ") :])
        s = stages[name]
        print(
            f"{name:>17}: {s['seconds']:8.1f} s  {s['rows']:>12,} rows  "
            f"{s['peak_rss_mb']:>8,.0f} MB",
            flush=True,
        )
    result = summarise(world, stages)
    table = markdown(result)
    print("\n" + table)
    folder = world.root if args.smoke else HERE / "results"
    (folder / f"{args.customers}.json").write_text(json.dumps(result, indent=1) + "\n")
    (folder / f"{args.customers}.md").write_text(table)
    print(f"wrote {folder / f'{args.customers}.json'}")
    if result["floor_agrees"] is False:
        print("the floor and the dbt marts disagree: see stages.floor.agreement", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
