"""The nightly chain with nothing but the real dagster-daemon: a new landing day is loaded, the
features rebuild as of it, the hourly send uses them through a real Kannel, receipts come
back and the experiments refresh, with no manual launch. And every writer of the warehouse
waits its turn: runs launched at once succeed one after another."""

import contextlib
import csv
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from conftest import port_range_start
from dagster_instance import (
    BIN,
    REPO,
    dagster_home,
    failed_runs,
    instance_at,
    materializations,
    metadata,
    pipeline_env,
    run_timeline,
    running_daemon,
    wait_until,
)

from send_jobs import kannel_box
from simulator.writer import simulate

IN_FLIGHT = {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
             dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED}  # fmt: skip

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dagster-daemon")]

# Zones without daylight saving by UTC offset: the customers are put where it is early
# afternoon now, so the send has recipients inside their quiet-hours window at any hour.
FIXED_ZONES = {
    -11: "Pacific/Pago_Pago", -10: "Pacific/Honolulu", -9: "Pacific/Gambier",
    -8: "Pacific/Pitcairn", -7: "America/Phoenix", -6: "America/Regina", -5: "America/Bogota",
    -4: "America/La_Paz", -3: "America/Argentina/Buenos_Aires", -2: "Atlantic/South_Georgia",
    -1: "Atlantic/Cape_Verde", 0: "Atlantic/Reykjavik", 1: "Africa/Lagos",
    2: "Africa/Johannesburg", 3: "Europe/Istanbul", 4: "Asia/Dubai", 5: "Asia/Karachi",
    6: "Asia/Dhaka", 7: "Asia/Bangkok", 8: "Asia/Shanghai", 9: "Asia/Tokyo",
    10: "Australia/Brisbane", 11: "Pacific/Noumea", 12: "Pacific/Tarawa",
}  # fmt: skip


def afternoon_zone(now: datetime) -> str:
    offset = (13 - now.hour + 11) % 24 - 11  # local 13:00 now
    return FIXED_ZONES[offset]


def shop_landing(folder: Path, today: datetime) -> tuple[Path, Path]:
    """A month of a shop's landing files ending the day before yesterday, and yesterday's
    files kept aside (the new day); every customer in a zone where it is early afternoon."""
    full, landing, new_day = folder / "simulated", folder / "landing", folder / "new_day"
    start = (today - timedelta(days=31)).date()
    simulate(full, customers=400, start=start, days=31, seed=5, bad_rows=0.0)
    zone = afternoon_zone(today)
    for path in (full / "customers").glob("*.csv"):
        with path.open() as f:
            rows = list(csv.DictReader(f))
        with path.open("w", newline="") as f:
            out = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["customer_id"])
            out.writeheader()
            out.writerows({**r, "time_zone": zone} for r in rows)
    shutil.copytree(full, landing, dirs_exist_ok=True)  # the receiver may be there first
    yesterday = (today - timedelta(days=1)).date().isoformat()
    for path in landing.glob(f"*/{yesterday}.*"):
        (new_day / path.parent.name).mkdir(parents=True, exist_ok=True)
        path.rename(new_day / path.parent.name / path.name)
    return landing, new_day


@pytest.fixture
def gateway(tmp_path):
    """A real Kannel with fakesmsc and the receiver, started as `retentext gateway up`."""
    if not shutil.which("bearerbox"):
        pytest.fail("Kannel is not installed: run `make kannel`")
    base = kannel_box.free_base_port(port_range_start(24000))
    env = {
        "RETENTEXT_KANNEL_STATE": str(tmp_path / "kannel"),
        "RETENTEXT_KANNEL_BASE_PORT": str(base),
        "RETENTEXT_LANDING": str(tmp_path / "landing"),
    }
    full_env = {**os.environ, **env}
    up = subprocess.run([BIN / "retentext", "gateway", "up", "--receiver"], cwd=REPO,
                        env=full_env, capture_output=True, text=True, timeout=120)  # fmt: skip
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield env
    finally:
        subprocess.run([BIN / "retentext", "gateway", "down"], cwd=REPO, env=full_env,
                       capture_output=True, timeout=120)  # fmt: skip


def delivered_messages(warehouse: Path) -> int:
    """Messages whose delivery receipt is in the ledger; 0 while a run holds the file."""
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.IOException:
        return 0
    try:
        return con.execute(
            "SELECT count(*) FROM sends.messages WHERE status = 'delivered'"
        ).fetchone()[0]
    except duckdb.CatalogException:
        return 0
    finally:
        con.close()


def as_of_of(record) -> str:
    return metadata(record).get("as_of", "")


def test_a_new_landing_day_flows_through_the_whole_chain_with_no_manual_launch(tmp_path, gateway):
    today = datetime.now(UTC)
    midnight = today.replace(hour=0, minute=0, second=0, microsecond=0)
    landing, new_day = shop_landing(tmp_path, today)
    home = dagster_home(tmp_path / "dagster")
    env = pipeline_env(
        home,
        **gateway,
        RETENTEXT_WAREHOUSE=str(tmp_path / "warehouse.duckdb"),
        RETENTEXT_OUTBOX=str(tmp_path / "outbox"),
        RETENTEXT_REPORTS=str(tmp_path / "reports"),
        RETENTEXT_ALERTS_LOG=str(tmp_path / "alerts.log"),
        RETENTEXT_PARTITIONS_START=(today - timedelta(days=60)).date().isoformat(),
        RETENTEXT_GATEWAY="kannel",
        # the tick intervals shortened for the test: sensors every 3 s, the send schedule
        # every minute, and marts older than a day are stale
        RETENTEXT_SENSOR_INTERVAL_SECONDS="3",
        RETENTEXT_SEND_CRON="* * * * *",
        RETENTEXT_MARTS_MAX_LAG_HOURS="24",
    )
    log = tmp_path / "daemon.log"
    instance = instance_at(home)
    with running_daemon(env, log):
        # the history loads and builds by itself; its marts (as of yesterday 00:00) are
        # stale, so no send runs from them (the skip itself: test_send_dagster)
        wait_until("the history's features", lambda: any(
            as_of_of(r) == (midnight - timedelta(days=1)).isoformat()
            for r in materializations(instance, "marts", "dim_customers")),
            240, log, instance)  # fmt: skip
        assert not materializations(instance, "sends", "run")

        shutil.copytree(new_day, landing, dirs_exist_ok=True)  # the new day lands

        built = wait_until("the features as of the new day", lambda: [
            r for r in materializations(instance, "marts", "dim_customers")
            if as_of_of(r) == midnight.isoformat()], 240, log, instance)[0]  # fmt: skip
        # the predicted value is fitted in the same run, after the dbt build
        valued = wait_until("the predicted value of the new day", lambda: [
            r for r in materializations(instance, "predictions", "customer_value")
            if r.run_id == built.run_id], 60, log, instance)[0]  # fmt: skip
        assert metadata(valued)["as_of"] == midnight.isoformat()
        sent = wait_until("a send run", lambda: materializations(instance, "sends", "run"),
                          150, log)[0]  # fmt: skip
        handed_over = metadata(sent)["delivery_handed_over"]
        assert handed_over > 0
        # the receiver appends the DLRs; the receipts sensor launches a load after the send
        wait_until("a receipts load after the send", lambda: [
            r for r in materializations(instance, "sends", "receipts")
            if r.storage_id > sent.storage_id], 120, log, instance)  # fmt: skip
        wait_until("every message's receipt loaded", lambda: delivered_messages(
            tmp_path / "warehouse.duckdb") == handed_over, 120, log, instance)  # fmt: skip
        refreshed = wait_until("the experiments after the features", lambda: [
            r for r in materializations(instance, "experiments", "campaign_results")
            if r.storage_id > built.storage_id], 120, log, instance)[0]  # fmt: skip
        # a run's materialisation comes before its end: the daemon stops only once the
        # receipts loads it launched have finished
        wait_until("the receipts loads to finish", lambda: not [
            r for r in instance.get_runs(dg.RunsFilter(job_name="receipts_job"))
            if r.status in IN_FLIGHT], 120, log, instance)  # fmt: skip

    yesterday = (today - timedelta(days=1)).date().isoformat()
    loads = [r for r in instance.get_runs(dg.RunsFilter(job_name="ingest_job"))
             if r.tags.get("dagster/asset_partition_range_end") == yesterday]  # fmt: skip
    assert loads and loads[0].status == dg.DagsterRunStatus.SUCCESS
    assert loads[0].tags["dagster/sensor_name"] == "landing_sensor"
    send = metadata(sent)
    assert send["marts_as_of"] == midnight.isoformat()  # the send used the new marts
    assert instance.get_run_by_id(sent.run_id).tags["dagster/schedule_name"] == (
        "hourly_send_schedule"
    )
    loads = [r for r in instance.get_runs(dg.RunsFilter(job_name="receipts_job"))
             if r.status == dg.DagsterRunStatus.SUCCESS]  # fmt: skip
    timeline = run_timeline(instance)  # says which run did what, should an assert fail
    assert {r.tags.get("dagster/sensor_name") for r in loads} == {"gateway_receipts_sensor"}, (
        timeline
    )
    assert metadata(refreshed)["units"] >= 0
    assert failed_runs(instance) == [], timeline
    assert not (tmp_path / "alerts.log").exists()


def test_writers_launched_at_once_run_one_after_another(tmp_path, send_warehouse):
    """A send run, a receipts load and a dbt build queued together: the pool lets one run
    at a time, so none fails on DuckDB's lock."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(send_warehouse, warehouse)
    home = dagster_home(tmp_path / "dagster")
    env = pipeline_env(
        home,
        RETENTEXT_WAREHOUSE=str(warehouse),
        RETENTEXT_LANDING=str(tmp_path / "landing"),
        RETENTEXT_OUTBOX=str(tmp_path / "outbox"),
        RETENTEXT_REPORTS=str(tmp_path / "reports"),
        RETENTEXT_PARTITIONS_START="2025-01-01",
        RETENTEXT_SEND_CRON="0 0 1 1 *",  # no scheduled send meanwhile
    )
    launches = [
        ["-j", "send_job", "--tags", '{"dagster/partition": "2025-05-31-15:00"}'],
        ["-j", "receipts_job"],
        ["-j", "features_job", "--config-json",
         '{"ops": {"features": {"config": {"as_of": "2025-06-01T00:00:00Z"}}}}'],
    ]  # fmt: skip
    # queued before the daemon starts, so all three wait together; launched side by side,
    # as three users would
    launching = [
        subprocess.Popen(
            [BIN / "dagster", "job", "launch", "-m", "orchestration.definitions", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for args in launches
    ]
    for launch in launching:
        output, _ = launch.communicate(timeout=180)
        assert launch.returncode == 0, output
    instance = instance_at(home)
    assert len(instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))) == 3
    log = tmp_path / "daemon.log"
    with running_daemon(env, log):
        finished = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE}
        wait_until("the three runs", lambda: all(
            r.status in finished for r in instance.get_runs()
            if r.job_name != "__ASSET_JOB"), 300, log, instance)  # fmt: skip
    writers = ("send_job", "receipts_job", "features_job")
    runs = [r for r in instance.get_runs() if r.job_name in writers]  # not the freshness checks
    assert {r.job_name: r.status for r in runs} == {
        "send_job": dg.DagsterRunStatus.SUCCESS,
        "receipts_job": dg.DagsterRunStatus.SUCCESS,
        "features_job": dg.DagsterRunStatus.SUCCESS,
    }
    spans = sorted(
        (instance.get_run_stats(r.run_id).start_time, instance.get_run_stats(r.run_id).end_time)
        for r in runs
    )
    for (_, first_end), (second_start, _) in zip(spans, spans[1:], strict=False):
        assert first_end <= second_start, spans  # one after another, never together


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue  # the process ended meanwhile
    return found


def _code_server(daemon_pid: int) -> int | None:
    for pid in _children(daemon_pid):
        with contextlib.suppress(OSError):
            if b" grpc " in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" "):
                return pid
    return None


@pytest.mark.slow
def test_a_queued_run_outlives_its_code_server_going_away(tmp_path):
    """The daemon's code server stops when the daemon's heartbeat is late (a loaded box).
    A run leaving the queue meanwhile goes back to it and runs once the daemon has started
    a new server, instead of failing (deploy/dagster.yaml: max_user_code_failure_retries)."""
    home = dagster_home(tmp_path / "dagster")
    (tmp_path / "landing").mkdir()
    env = pipeline_env(home, RETENTEXT_WAREHOUSE=str(tmp_path / "warehouse.duckdb"),
                       RETENTEXT_LANDING=str(tmp_path / "landing"),
                       RETENTEXT_SEND_CRON="0 0 1 1 *")  # fmt: skip
    log = tmp_path / "daemon.log"
    instance = instance_at(home)
    with running_daemon(env, log) as daemon:
        server = wait_until("the daemon's code server", lambda: _code_server(daemon.pid), 120,
                            log, instance)  # fmt: skip
        os.kill(server, 9)
        launched = subprocess.run(
            [BIN / "dagster", "job", "launch", "-m", "orchestration.definitions", "-j",
             "receipts_job"], cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert launched.returncode == 0, launched.stdout + launched.stderr
        finished = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE}
        [run] = wait_until("the receipts run to finish", lambda: [
            r for r in instance.get_runs() if r.job_name == "receipts_job"
            and r.status in finished], 240, log, instance)  # fmt: skip
    assert run.status == dg.DagsterRunStatus.SUCCESS, run_timeline(instance)
    requeued = [e.message for e in instance.all_logs(run.run_id)
                if "re-submitting the run into the queue" in (e.message or "")]  # fmt: skip
    assert requeued  # it did leave the queue while no code server answered
