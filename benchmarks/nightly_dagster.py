"""The nightly through Dagster alone, for the scale harness: the real dagster-daemon on a copy
of the warehouse as it was before day N; day N lands, the landing sensor loads it, the
automation rebuilds the features, and a send run writes the decisions (a dry run as of the
harness's send time, as the CLI's `send` stage). Compared with the CLI path of the same
harness run (nightly_ingest + nightly_features + send).

The send run is launched when the marts are fresh rather than waited for at the top of the
hour: the schedule's wait is the clock, not the work. The sensors' interval is 1 s, so each
loop of Dagster's daemons (every 5 s, their floor) evaluates them: the latency of that
polling is in the total. With the product's default of 60 s, each of the two hops (landing
sensor, automation) waits up to a minute more."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"
SENSOR_INTERVAL_S = 1


def before_nightly(warehouse: Path) -> Path:
    """Where the harness keeps the warehouse as it was before day N landed."""
    return warehouse.with_name("before-nightly.duckdb")


def _landing_without(landing: Path, day: str, into: Path) -> list[Path]:
    """A hard-linked copy of ``landing`` (same sizes and mtimes, so the loaded files stay
    loaded) without ``day``'s files; returns those files, to land later."""
    shutil.rmtree(into, ignore_errors=True)
    shutil.copytree(landing, into, copy_function=os.link)
    held = sorted(into.glob(f"*/{day}.*"))
    for f in held:
        f.unlink()
    return [landing / f.parent.name / f.name for f in held]


def _wait(what: str, predicate, timeout: float, daemon: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if daemon.poll() is not None:
            break
        time.sleep(0.5)
    raise RuntimeError(f"{what}: not done in {timeout:.0f}s\n{log.read_text()[-3000:]}")


def run(work: Path, warehouse_before: Path, landing: Path, day: str, partitions_start: str,
        nightly_as_of: datetime, send_at: datetime) -> dict:  # fmt: skip
    """Seconds from day N landing to the send decisions, through the daemon, and the parts."""
    import dagster as dg

    shutil.rmtree(work, ignore_errors=True)
    home = work / "dagster"
    home.mkdir(parents=True)
    (home / "dagster.yaml").symlink_to(ROOT / "deploy" / "dagster.yaml")
    warehouse = work / "warehouse.duckdb"
    shutil.copy2(warehouse_before, warehouse)
    new_files = _landing_without(landing, day, work / "landing")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETENTEXT_")} | {
        "DAGSTER_HOME": str(home), "RETENTEXT_WAREHOUSE": str(warehouse),
        "RETENTEXT_LANDING": str(work / "landing"), "RETENTEXT_OUTBOX": str(work / "outbox"),
        "RETENTEXT_REPORTS": str(work / "reports"),
        "RETENTEXT_PARTITIONS_START": partitions_start,
        "RETENTEXT_SENSOR_INTERVAL_SECONDS": str(SENSOR_INTERVAL_S),
        "RETENTEXT_SEND_CRON": "0 0 1 1 *",  # the send is launched below
        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
    }  # fmt: skip
    subprocess.run([BIN / "dagster", "instance", "concurrency", "set", "warehouse", "1"],
                   env=env, check=True, capture_output=True)  # fmt: skip
    instance = dg.DagsterInstance.from_config(str(home))
    log = work / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [BIN / "dagster-daemon", "run", "-m", "orchestration.definitions"], cwd=ROOT,
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        _wait("the daemon's first landing tick", lambda: _ticked(instance, "landing_sensor"),
              180, daemon, log)  # fmt: skip
        landed = time.perf_counter()
        for f in new_files:  # day N lands
            os.link(f, work / "landing" / f.parent.name / f.name)
        _wait("the features as of day N", lambda: _built_as_of(instance, nightly_as_of),
              1800, daemon, log)  # fmt: skip
        _wait("the features run", lambda: _features_done(instance), 1800, daemon, log)
        fresh = time.perf_counter()
        send, launching = _launch_send(env, send_at)
        _wait("the send run", lambda: _finished(instance, send), 900, daemon, log)
        decided = time.perf_counter()
    finally:
        os.killpg(daemon.pid, 15)
        daemon.wait(timeout=120)
    if instance.get_run_by_id(send).status != dg.DagsterRunStatus.SUCCESS:
        raise RuntimeError(f"the send run failed\n{log.read_text()[-3000:]}")
    parts = {name: _seconds(instance, run_id) for name, run_id in _chain_runs(instance).items()}
    parts["send"] = _seconds(instance, send)
    chain = ("ingest", "features", "send")
    total = decided - landed - launching
    return {
        "seconds": total,
        "landing_to_fresh_marts_seconds": round(fresh - landed, 2),
        "run_seconds": {k: round(v, 2) for k, v in parts.items()},
        "between_runs_seconds": round(total - sum(parts.get(k, 0.0) for k in chain), 2),
        "sensor_interval_s": SENSOR_INTERVAL_S,
    }


def _chain_runs(instance) -> dict[str, str]:
    """The run ids of day N's ingest, the features build and the experiments after it."""
    import dagster as dg

    found = {}
    for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS])):
        keys = {k.to_user_string() for k in run.asset_selection or ()}
        if run.job_name == "ingest_job":
            found["ingest"] = run.run_id
        elif "marts/dim_customers" in keys:
            found["features"] = run.run_id
        elif "experiments/campaign_results" in keys:
            found["experiments"] = run.run_id
    return found


def _ticked(instance, name: str) -> bool:
    for state in instance.all_instigator_state():
        if state.name == name and instance.get_ticks(
            state.instigator_origin_id, state.selector_id, limit=1
        ):
            return True
    return False


def _built_as_of(instance, as_of: datetime) -> bool:
    import dagster as dg

    event = instance.get_latest_materialization_event(dg.AssetKey(["marts", "dim_customers"]))
    value = event.asset_materialization.metadata.get("as_of") if event else None
    return value is not None and value.value == as_of.isoformat()


def _launch_send(env: dict, send_at: datetime) -> tuple[str, float]:
    """A dry-run send as of ``send_at`` through the instance's queue: its run id, and the
    seconds the `dagster job launch` process took (the harness's start-up, not Dagster's)."""
    import dagster as dg

    before = {r.run_id for r in dg.DagsterInstance.from_config(env["DAGSTER_HOME"]).get_runs()}
    started = time.perf_counter()
    subprocess.run(
        [BIN / "dagster", "job", "launch", "-m", "orchestration.definitions", "-j", "send_job",
         "--tags", json.dumps({"dagster/partition": send_at.strftime("%Y-%m-%d-%H:%M")}),
         "--config-json", '{"ops": {"sends__run": {"config": {"dry_run": true}}}}'],
        cwd=ROOT, env=env, check=True, capture_output=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    after = dg.DagsterInstance.from_config(env["DAGSTER_HOME"]).get_runs()
    run_id = next(r.run_id for r in after if r.run_id not in before and r.job_name == "send_job")
    return run_id, seconds


def _features_done(instance) -> bool:
    run_id = _chain_runs(instance).get("features")
    return bool(run_id) and instance.get_run_by_id(run_id).is_finished


def _finished(instance, run_id: str) -> bool:
    return instance.get_run_by_id(run_id).is_finished


def _seconds(instance, run_id: str) -> float:
    stats = instance.get_run_stats(run_id)
    return (stats.end_time or 0) - (stats.start_time or 0)
