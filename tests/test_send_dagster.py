"""The send run and the receipts load as real Dagster materializations; the hourly schedule
sends only from fresh marts; the sensor asks for a load only when the receiver's files
grew."""

import shutil
from datetime import UTC, datetime

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from orchestration.defs.common import LAST_UPDATED, SettingsResource
from orchestration.defs.sends import (
    gateway_receipts,
    gateway_receipts_sensor,
    hourly_send_schedule,
    send_run,
)
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


def _marts_built_as_of(instance, as_of: datetime) -> None:
    """What a features build records on the marts: the data time it was built as of."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=["marts", "dim_customers"],
            metadata={LAST_UPDATED: dg.MetadataValue.timestamp(as_of)},
        )
    )


def _schedule_tick(instance, at: datetime, **env):
    settings = SettingsResource.of(Settings.from_env(env))
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=at, resources={"settings": settings}
    ) as ctx:
        return hourly_send_schedule(ctx)


def test_the_hourly_send_runs_the_hour_that_starts_from_fresh_marts():
    """Decisions as of the hour the run starts in, not the hour that has ended; once per
    hour (the run key)."""
    with dg.instance_for_test() as instance:
        _marts_built_as_of(instance, datetime(2026, 6, 10, 0, 0, tzinfo=UTC))
        request = _schedule_tick(instance, datetime(2026, 6, 10, 15, 0, 5, tzinfo=UTC))
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == "2026-06-10-15:00"
    assert request.run_key == "2026-06-10-15:00"


def test_the_hourly_send_skips_stale_or_missing_marts_with_the_reason():
    with dg.instance_for_test() as instance:
        _stale_then_fresh(instance, datetime(2026, 6, 10, 15, 0, 5, tzinfo=UTC))


def _stale_then_fresh(instance, at: datetime) -> None:
    missing = _schedule_tick(instance, at)
    assert isinstance(missing, dg.SkipReason)
    assert "the marts have not been built yet" in missing.skip_message
    _marts_built_as_of(instance, datetime(2026, 6, 8, 0, 0, tzinfo=UTC))  # 63 h before
    stale = _schedule_tick(instance, at)
    assert isinstance(stale, dg.SkipReason)
    assert "the marts are as of 2026-06-08T00:00:00+00:00, 63.0 h before" in stale.skip_message
    assert "more than 30 h is stale" in stale.skip_message
    # the limit is a setting
    assert isinstance(
        _schedule_tick(instance, at, RETENTEXT_MARTS_MAX_LAG_HOURS="72"), dg.RunRequest
    )


def test_sensor_requests_a_load_only_when_files_grow(tmp_path):
    settings = SettingsResource.of(Settings.from_env({"RETENTEXT_LANDING": str(tmp_path)}))
    replies = tmp_path / "gateway" / "replies"
    replies.mkdir(parents=True)
    instance = dg.DagsterInstance.ephemeral()

    def tick(cursor=None):
        ctx = dg.build_sensor_context(
            instance=instance, cursor=cursor, resources={"settings": settings}
        )
        result = gateway_receipts_sensor(ctx)
        return [result] if isinstance(result, dg.RunRequest) else [], ctx.cursor

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
