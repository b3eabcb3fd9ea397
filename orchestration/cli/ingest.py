"""``retentext simulate``, ``run`` and ``compare-engines``: landing files in, features out."""

from __future__ import annotations

import argparse
import os
import time
from datetime import date, datetime
from pathlib import Path

from rich.table import Table

from ingest.pending import ranges_to_load, stray_files
from orchestration.cli.common import as_of_type, console, error, warn
from warehouse.settings import LANDING_ENV, WAREHOUSE_ENV, Settings
from warehouse.tool_env import scoped_env


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    simulate_landing(Path(args.out), args.customers, args.start, args.days, args.seed,
                     args.bad_rows, args.changes)  # fmt: skip
    return 0


def simulate_landing(
    out: Path,
    customers: int,
    start: date,
    days: int,
    seed: int,
    bad_rows: float,
    changes: float = 0.0,
) -> None:
    """A synthetic shop's landing files under ``out``, with a summary table."""
    from simulator.writer import simulate

    started = time.perf_counter()
    with console.status("simulating") as status:
        summary = simulate(out, customers, start, days, seed, bad_rows,
                           progress=lambda s: status.update(f"writing {s}"),
                           changes=changes)  # fmt: skip
    table = Table("source", "rows", "files", "bad rows injected", title="landing files")
    for source, info in summary.items():
        table.add_row(
            source, f"{info['rows']:,}", str(info["files"]), str(sum(info["defects"].values()))
        )
    console.print(table)
    console.print(f"wrote {out.resolve()} in {time.perf_counter() - started:.1f}s")


PLANNED_EVENTS_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


def _one_planned_event_per_asset():
    """Dagster logs a "materialization planned" event per partition of a backfill unless
    this is set: 3,645 events for two years of five sources, about half of Dagster's own
    time in such a load (benchmarks/README.md has the figures). The cost: a failed run leaves
    its partitions missing in Dagster's UI rather than failed; the load is all or nothing
    anyway. Set the variable to false to keep the per-partition events."""
    return scoped_env({PLANNED_EVENTS_ENV: "true"}, keep_existing=True)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    settings = settings.with_paths(landing=args.landing, warehouse=args.warehouse)
    return load_and_build(settings, args.as_of, skip_features=args.skip_features)


def load_and_build(settings: Settings, as_of: datetime, skip_features: bool = False) -> int:
    """Load every complete landing day up to ``as_of`` not loaded yet through the ingest
    assets, then build the features as of ``as_of`` (unless ``skip_features``)."""
    import dagster as dg

    from orchestration.defs.common import resources as resources_for

    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    ranges = ranges_to_load(settings.landing, settings.warehouse, as_of, settings.partitions_start)
    # built now, from this run's paths (definitions may have been imported with others)
    resources = resources_for(settings)
    instance = (
        dg.DagsterInstance.get()
        if os.environ.get("DAGSTER_HOME")
        else (dg.DagsterInstance.ephemeral())
    )
    started = time.perf_counter()
    failed_checks = _load(instance, resources, ranges)
    if failed_checks is None:
        return 1
    _print_summary(settings.warehouse, ranges, time.perf_counter() - started)
    _print_strays(stray_files(settings.landing))
    for key, start, end, failed in failed_checks:
        warn(
            f"check failed: {key} {start}..{end} great_expectations: "
            f"{failed.value if failed else ''}"
        )
    if not skip_features:
        code = _build_features(instance, resources, as_of, settings.warehouse)
        if code:
            return code
    console.print(f"warehouse: {settings.warehouse}")
    return 0


def _load(instance, resources: dict, ranges: list[tuple[date, date]]) -> list | None:
    """Materialise the ingest assets for each range; the failed checks, or None when a
    range's load failed (nothing of it was committed)."""
    import dagster as dg

    from orchestration.defs.ingest import raw_assets

    failed_checks = []
    with console.status("loading") as status, _one_planned_event_per_asset():
        for start, end in ranges:
            status.update(f"loading partitions {start}..{end}")
            result = dg.materialize(
                raw_assets, instance=instance, resources=resources, raise_on_error=False,
                tags={"dagster/asset_partition_range_start": start.isoformat(),
                      "dagster/asset_partition_range_end": end.isoformat()},
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            )  # fmt: skip
            if not result.success:
                error(
                    f"the load of {start}..{end} failed; see above. "
                    "Nothing of that range was committed."
                )
                return None
            failed_checks += [
                (e.asset_key.to_user_string(), start, end, e.metadata.get("failed"))
                for e in result.get_asset_check_evaluations() if not e.passed
            ]  # fmt: skip
    return failed_checks


def _build_features(instance, resources: dict, as_of: datetime, warehouse: Path) -> int:
    """Materialise the dbt assets (build + tests) as of the run's time."""
    import dagster as dg
    import duckdb

    from orchestration.defs.features import defs as features_defs
    from orchestration.defs.features import features
    from orchestration.defs.features.predictions import customer_value
    from warehouse.contract import public_marts

    started = time.perf_counter()
    with console.status(f"building features as of {as_of.isoformat()}"):
        result = dg.materialize(
            [features, customer_value],
            instance=instance,
            resources={**resources, "dbt": features_defs.resources["dbt"]},
            run_config={
                "ops": {"features": {"config": {"as_of": as_of.isoformat()}}},
                "loggers": {"console": {"config": {"log_level": "WARNING"}}},
            },
            raise_on_error=False,
        )
    if not result.success:
        error(
            "the features build failed; see the output above "
            "(dbt_project/logs/dbt.log has all of dbt's)"
        )
        return 1
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    con = duckdb.connect(str(warehouse), read_only=True)
    table = Table(
        "mart",
        "rows",
        title=f"features as of {as_of.isoformat()} in {time.perf_counter() - started:.1f}s",
    )
    for mart in public_marts():
        n = con.execute(f"SELECT count(*) FROM marts.{mart.name}").fetchone()[0]
        table.add_row(f"marts.{mart.name}", f"{n:,}")
    console.print(table)
    stages = con.execute(
        "SELECT lifecycle_stage, count(*) FROM marts.dim_customers GROUP BY 1 ORDER BY 2 DESC"
    ).fetchall()
    console.print("lifecycle: " + ", ".join(f"{s} {n:,}" for s, n in stages))
    _print_value_fits(con, as_of)
    con.close()
    for e in failed:
        warn(
            f"dbt test {e.check_name} on {e.asset_key.to_user_string()} "
            f"did not pass ({e.severity.value})"
        )
    return 0


def _print_value_fits(con, as_of: datetime) -> None:
    """One line per predicted-value model: fitted on how many, or why not."""
    fits = con.execute(
        """SELECT model, status, reason, customers, distinct_rows
           FROM predictions.customer_value_fits WHERE as_of = ? ORDER BY model""",
        [as_of.replace(tzinfo=None)],
    ).fetchall()
    for model, status, reason, customers, rows in fits:
        said = f"{status} on {customers:,} customers ({rows:,} distinct histories)"
        console.print(f"predicted value, {model}: {said}" + (f"; {reason}" if reason else ""))


def _print_strays(strays: list) -> None:
    if strays:
        warn(f"{len(strays)} landing file(s) not loaded:")
        for stray in strays:
            console.print(f"  {stray}")


def _print_summary(warehouse: Path, ranges, seconds: float) -> None:
    import duckdb

    if not ranges:
        console.print("nothing new to load: every landing file up to as_of is loaded")
        return
    con = duckdb.connect(str(warehouse), read_only=True)
    where = " OR ".join(f"partition_date BETWEEN '{s}' AND '{e}'" for s, e in ranges)
    table = Table(
        "source",
        "files",
        "read",
        "accepted",
        "quarantined",
        "duplicates dropped",
        title=f"loaded {len(ranges)} range(s) in {seconds:.1f}s",
    )
    rows = con.execute(f"""SELECT source, count(*), sum(rows_read), sum(rows_accepted),
        sum(rows_quarantined), sum(duplicates_dropped) FROM raw.load_files WHERE {where}
        GROUP BY source ORDER BY source""").fetchall()
    for row in rows:
        table.add_row(row[0], *(f"{int(v or 0):,}" for v in row[1:]))
    console.print(table)
    reasons = con.execute(f"""SELECT source, reason, count(*) FROM raw.quarantine WHERE {where}
        GROUP BY ALL ORDER BY 1, 3 DESC""").fetchall()
    if reasons:
        qt = Table("source", "quarantine reason", "rows", title="raw.quarantine")
        for source, reason, n in reasons:
            qt.add_row(source, reason, f"{n:,}")
        console.print(qt)
    for file, note in con.execute(f"""SELECT file, note FROM raw.load_files
            WHERE ({where}) AND note IS NOT NULL ORDER BY file""").fetchall():
        console.print(f"  {file}: {note}")
    con.close()


def cmd_compare_engines(args: argparse.Namespace, settings: Settings) -> int:
    """Load the landing data, build the marts with dbt on DuckDB and on Spark from the same raw
    tables, and diff every public mart row by row."""
    from warehouse import engines

    work = Path(args.work).resolve()
    spark_dir = Path(args.spark_dir).resolve()
    warehouse = work / "warehouse.duckdb"
    work.mkdir(parents=True, exist_ok=True)
    code = load_and_build(
        settings.with_paths(landing=args.landing, warehouse=warehouse), args.as_of,
        skip_features=True,
    )  # fmt: skip
    if code:
        return code
    as_of = args.as_of.isoformat()
    timings = {}
    with console.status("dbt build on DuckDB"):
        started = time.perf_counter()
        engines.dbt_build(
            "duckdb", as_of, {WAREHOUSE_ENV: str(warehouse)}, work / "dbt-target-duckdb"
        )
        timings["duckdb"] = time.perf_counter() - started
    with console.status("exporting raw tables to parquet for Spark"):
        engines.export_raw(warehouse, spark_dir)
    with console.status("dbt build on Spark (local[2])"):
        started = time.perf_counter()
        engines.dbt_build(
            "spark", as_of, {"RETENTEXT_SPARK_DIR": str(spark_dir)}, spark_dir / "target"
        )
        timings["spark"] = time.perf_counter() - started
    diffs = engines.compare_marts(warehouse, spark_dir)
    table = Table(
        "mart",
        "duckdb rows",
        "spark rows",
        "differing rows",
        title=f"DuckDB vs Spark as of {as_of} (by key; numbers within {engines.TOLERANCE:g})",
    )
    for d in diffs:
        table.add_row(d.mart, f"{d.duckdb_rows:,}", f"{d.spark_rows:,}", f"{d.differing_rows:,}")
    console.print(table)
    for d in diffs:
        for side, cols in d.columns_only_in.items():
            console.print(f"  {d.mart}: columns only on {side}: {', '.join(cols)}")
        for example in d.examples:
            console.print(f"  {d.mart} differs: {example}")
    console.print(
        f"dbt build (models and all tests): duckdb {timings['duckdb']:.1f}s, "
        f"spark {timings['spark']:.1f}s"
    )
    total = sum(d.differing_rows for d in diffs)
    print(f"differing rows: {total}")
    return 1 if total else 0


def register(sub) -> None:

    sim = sub.add_parser("simulate", help="write a synthetic shop's landing files")
    sim.add_argument("--out", required=True, help="landing folder to write")
    sim.add_argument("--customers", type=int, default=5000)
    sim.add_argument(
        "--start", type=date.fromisoformat, default=date(2025, 1, 1), help="first day, YYYY-MM-DD"
    )
    sim.add_argument("--days", type=int, default=365)
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument(
        "--bad-rows", type=float, default=0.0, help="rate of defective rows per source, e.g. 0.01"
    )
    sim.add_argument(
        "--changes", type=float, default=0.0,
        help="share of customers and products that change later (new phone, new price); "
        "with it, refunds and cancellations land as later versions",
    )  # fmt: skip
    sim.set_defaults(func=cmd_simulate)

    run = sub.add_parser(
        "run", help="load every complete day up to --as-of not loaded yet, then build features"
    )
    run.add_argument("--landing", help=f"landing folder (default: ${LANDING_ENV} or data/landing)")
    run.add_argument(
        "--as-of", type=as_of_type, required=True, help="the run's time, e.g. 2026-01-01T00:00:00Z"
    )
    run.add_argument(
        "--warehouse",
        help=f"DuckDB file (default: ${WAREHOUSE_ENV} or data/warehouse.duckdb)",
    )
    run.add_argument(
        "--skip-features",
        action="store_true",
        help="load landing files only; do not run the dbt feature build",
    )
    run.set_defaults(func=cmd_run)
    cmp = sub.add_parser(
        "compare-engines", help="build the marts on DuckDB and Spark and diff them row by row"
    )
    cmp.add_argument("--landing", required=True)
    cmp.add_argument("--as-of", type=as_of_type, required=True)
    cmp.add_argument("--work", default="data/compare", help="DuckDB warehouse and dbt targets")
    cmp.add_argument(
        "--spark-dir",
        default=".spark",
        help="every Spark file: warehouse, metastore, temp, raw parquet",
    )
    cmp.set_defaults(func=cmd_compare_engines)
