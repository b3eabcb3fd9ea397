"""The send run and the receipts load as real Dagster materializations; the sensor asks for
a load only when the receiver's files grew."""

import shutil
from datetime import UTC, datetime

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from orchestration.definitions import defs
from orchestration.defs.common import SettingsResource
from orchestration.defs.sends import gateway_receipts, gateway_receipts_sensor, send_run
from warehouse.settings import Settings


def materialise_send_hour(send_warehouse, tmp_path, **config):
    """The send run of 2025-05-31 15:00 on a copy of the send world; returns (result, path)."""
    path = tmp_path / "w.duckdb"
    shutil.copy(send_warehouse, path)
    settings = Settings.from_env({"RETENTEXT_OUTBOX": str(tmp_path / "outbox"),
                                  "RETENTEXT_LANDING": str(tmp_path / "landing")})  # fmt: skip
    result = dg.materialize(
        [send_run, gateway_receipts],
        selection=[send_run],
        partition_key="2025-05-31-15:00",
        resources={
            "warehouse": DuckDBResource(database=str(path)),
            "settings": SettingsResource.of(settings),
        },  # fmt: skip
        run_config={"ops": {"sends__run": {"config": config}}},
    )
    return result, path


def test_hourly_send_partition_materialises_with_counts(send_warehouse, tmp_path):
    result, path = materialise_send_hour(
        send_warehouse, tmp_path, handover_at="2025-05-31T15:00:00Z"
    )
    assert result.success
    [mat] = result.asset_materializations_for_node("sends__run")
    assert mat.metadata["run_id"].value == "20250531T150000Z"
    sent = mat.metadata["sent"].value
    assert sent > 50 and mat.metadata["delivery_submitted"].value == sent
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT count(*) FROM sends.messages").fetchone()[0] == sent
    assert len(list((tmp_path / "outbox").glob("*.manifest.json"))) == 1


def test_a_past_hour_run_now_hands_nothing_over(send_warehouse, tmp_path):
    """Without a replay time, hand-over is judged at the wall clock: the messages of a
    backfilled hour from last year are long expired and none reaches the gateway."""
    result, _ = materialise_send_hour(send_warehouse, tmp_path)
    [mat] = result.asset_materializations_for_node("sends__run")
    assert mat.metadata["sent"].value > 50
    assert mat.metadata["delivery_handed_over"].value == 0
    assert mat.metadata["delivery_expired"].value == mat.metadata["sent"].value


def test_the_hourly_schedule_runs_the_hour_that_starts():
    """Decisions as of the hour the run starts in, not the hour that has ended."""
    schedule = defs.get_schedule_def("send_job_schedule")
    at = datetime(2026, 6, 10, 15, 0, 5, tzinfo=UTC)
    with dg.build_schedule_context(scheduled_execution_time=at) as ctx:
        [request] = list(schedule.evaluate_tick(ctx).run_requests)
    assert request.partition_key == "2026-06-10-15:00"


def test_sensor_requests_a_load_only_when_files_grow(tmp_path):
    settings = SettingsResource.of(Settings.from_env({"RETENTEXT_LANDING": str(tmp_path)}))
    replies = tmp_path / "gateway" / "replies"
    replies.mkdir(parents=True)
    instance = dg.DagsterInstance.ephemeral()

    def tick(cursor=None):
        ctx = dg.build_sensor_context(
            instance=instance, cursor=cursor, resources={"settings": settings}
        )
        return list(gateway_receipts_sensor(ctx)), ctx.cursor

    assert tick()[0] == []
    (replies / "2026-01-01.jsonl").write_text('{"x": 1}\n')
    requests, cursor = tick()
    assert len(requests) == 1
    assert tick(cursor)[0] == []
    with open(replies / "2026-01-01.jsonl", "a") as f:
        f.write('{"x": 2}\n')
    assert len(tick(cursor)[0]) == 1


def test_an_unknown_gateway_fails_before_anything_is_decided(send_warehouse, tmp_path):
    with pytest.raises(ValueError, match="gateway must be one of outbox, kannel, not 'pigeon'"):
        materialise_send_hour(send_warehouse, tmp_path, gateway="pigeon")
    # dagster-duckdb leaves its connection to the file open after the failed step: reopen it
    # the same way
    with DuckDBResource(database=str(tmp_path / "w.duckdb")).get_connection() as con:
        decided = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'sends' "
            "AND table_name = 'decisions'"
        ).fetchone()[0]
        if decided:
            decided = con.execute("SELECT count(*) FROM sends.decisions").fetchone()[0]
    assert decided == 0
