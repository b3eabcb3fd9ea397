"""Running unattended in Dagster: the landing sensor, the alert on a failed run, and the
marts' data-time freshness check, each against a real instance."""

import json
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import duckdb
import pytest

from orchestration.defs.common import LAST_UPDATED, SettingsResource
from orchestration.defs.common import resources as resources_for
from orchestration.defs.features import defs as features_defs
from orchestration.defs.features import features
from orchestration.defs.features.assets import AFTER_INGEST
from orchestration.defs.health import run_failure_alert
from orchestration.defs.ingest.sensors import landing_sensor
from warehouse.settings import Settings

from .test_ingest import GOOD, ORDERS_HEADER, write


def _landing_tick(instance, settings: Settings):
    ctx = dg.build_sensor_context(
        instance=instance, resources={"settings": SettingsResource.of(settings)}
    )
    return landing_sensor(ctx)


def _settings(tmp_path, **env) -> Settings:
    return Settings.from_env(
        {"RETENTEXT_WAREHOUSE": str(tmp_path / "w.duckdb"),
         "RETENTEXT_LANDING": str(tmp_path / "landing"),
         "RETENTEXT_PARTITIONS_START": "2025-01-01", **env}
    )  # fmt: skip


def _load(settings: Settings, day: str) -> None:
    from orchestration.defs.ingest import raw_assets

    dg.materialize(raw_assets, partition_key=day, resources=resources_for(settings))


def test_landing_sensor_requests_new_and_changed_days_and_reports_strays(tmp_path):
    settings = _settings(tmp_path)
    landing = settings.landing
    write(landing, "orders/2025-01-02.csv", f"{ORDERS_HEADER}\n{GOOD}\n")
    write(landing, "orders/2025-01-03.csv", f"{ORDERS_HEADER}\n")
    write(landing, "orders/2025-01-05.csv", f"{ORDERS_HEADER}\n")
    write(landing, "orders/2025-01-04.txt", f"{ORDERS_HEADER}\n")  # fits no source
    with dg.instance_for_test() as instance:
        requests = _landing_tick(instance, settings)
        ranges = [(r.tags["dagster/asset_partition_range_start"],
                   r.tags["dagster/asset_partition_range_end"]) for r in requests]  # fmt: skip
        assert ranges == [("2025-01-02", "2025-01-03"), ("2025-01-05", "2025-01-05")]
        for day in ("2025-01-02", "2025-01-03", "2025-01-05"):
            _load(settings, day)
        skip = _landing_tick(instance, settings)
        assert isinstance(skip, dg.SkipReason)
        assert skip.skip_message == (
            "no new or changed landing files; 1 stray file(s): orders/2025-01-04.txt"
        )
        # a re-delivered file (new size) is requested again, under a new run key
        write(landing, "orders/2025-01-03.csv", f"{ORDERS_HEADER}\n{GOOD.replace('O1', 'O2')}\n")
        [again] = _landing_tick(instance, settings)
        assert again.tags["dagster/asset_partition_range_start"] == "2025-01-03"
        assert again.run_key not in {r.run_key for r in requests}


def test_landing_sensor_waits_while_the_warehouse_is_written(tmp_path):
    settings = _settings(tmp_path)
    write(settings.landing, "orders/2025-01-02.csv", f"{ORDERS_HEADER}\n{GOOD}\n")
    _load(settings, "2025-01-02")
    write(settings.landing, "orders/2025-01-03.csv", f"{ORDERS_HEADER}\n")
    # another process holds DuckDB's write lock: a subprocess, as a run would
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('locked', flush=True); time.sleep(60)", str(settings.warehouse)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with dg.instance_for_test() as instance:
            skip = _landing_tick(instance, settings)
        assert isinstance(skip, dg.SkipReason)
        assert "the warehouse is being written" in skip.skip_message
    finally:
        holder.kill()
        holder.wait()


def test_landing_sensor_waits_for_a_load_in_flight(tmp_path):
    """A load queued or running: its days look half-loaded until it ends, so the sensor asks
    for nothing until then (asking would load them twice and rebuild the features twice)."""
    settings = _settings(tmp_path)
    write(settings.landing, "orders/2025-01-02.csv", f"{ORDERS_HEADER}\n{GOOD}\n")
    with dg.instance_for_test() as instance:
        running = dg.DagsterRunStatus.STARTED
        run = instance.add_run(dg.DagsterRun("ingest_job", run_id="a-load", status=running))
        skip = _landing_tick(instance, settings)
        assert isinstance(skip, dg.SkipReason)
        assert skip.skip_message == "load a-load is queued or running; looking again after it"
        instance.report_run_failed(run)  # over (failed): the days are asked for again
        [request] = _landing_tick(instance, settings)
        assert request.tags["dagster/asset_partition_range_start"] == "2025-01-02"


class _Webhook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    _Webhook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/T000/B000", _Webhook.received
    server.shutdown()
    server.server_close()


def _failed_features_run(instance, settings: Settings):
    """A real failure: the features built before anything is loaded."""
    result = dg.materialize(
        [features],
        instance=instance,
        resources={**resources_for(settings), "dbt": features_defs.resources["dbt"]},
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE"]
    return result.dagster_run, failure


def _alert_on_a_failed_run(settings: Settings):
    """The failure sensor's evaluation for a real failed run; the run."""
    with dg.instance_for_test() as instance:
        run, failure = _failed_features_run(instance, settings)
        ctx = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert", dagster_event=failure, dagster_instance=instance,
            dagster_run=run, resources={"settings": SettingsResource.of(settings)},
        ).for_run_failure()  # fmt: skip
        run_failure_alert(ctx)
    return run


def test_a_failed_run_writes_an_alert_line_and_posts_to_the_webhook(tmp_path, webhook):
    url, received = webhook
    settings = _settings(tmp_path, RETENTEXT_ALERT_WEBHOOK=url,
                         RETENTEXT_ALERTS_LOG=str(tmp_path / "alerts.log"))  # fmt: skip
    run = _alert_on_a_failed_run(settings)
    [line] = (tmp_path / "alerts.log").read_text().splitlines()
    assert line.startswith(f"Retentext run failed: {run.job_name} ({run.run_id}): ")
    assert "Steps failed: ['features']" in line
    [(content_type, payload)] = received
    assert content_type == "application/json"
    assert payload == {"text": line}  # Slack's incoming-webhook shape


def test_without_a_webhook_the_alert_line_is_still_written(tmp_path):
    settings = _settings(tmp_path, RETENTEXT_ALERTS_LOG=str(tmp_path / "alerts.log"))
    run = _alert_on_a_failed_run(settings)
    assert run.run_id in (tmp_path / "alerts.log").read_text()


def test_marts_freshness_is_judged_by_data_time_not_build_time():
    """A rebuild today of data that ends three days ago is stale; the check reads the as_of
    a build records."""
    from orchestration.defs.features.checks import marts_freshness

    check = next(c for c in marts_freshness if dg.AssetKey(["marts", "dim_customers"]) in {
        k.asset_key for k in c.check_keys})  # fmt: skip
    now = datetime.now(UTC)
    with dg.instance_for_test() as instance:
        for as_of, fresh in ((now - timedelta(days=3), False), (now - timedelta(hours=2), True)):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key=["marts", "dim_customers"],
                    metadata={LAST_UPDATED: dg.MetadataValue.timestamp(as_of)},
                )
            )  # recorded now: by build time, both would be fresh
            result = dg.materialize(
                [check],
                instance=instance,
                selection=dg.AssetSelection.checks(*[k for k in check.check_keys
                                                     if k.asset_key.path[-1] == "dim_customers"]),
            )  # fmt: skip
            [evaluation] = result.get_asset_check_evaluations()
            assert evaluation.passed is fresh, as_of


def test_the_whole_dbt_graph_is_requested_once_after_an_ingest(tmp_path):
    """Declarative automation: nothing before an ingest; every dbt node (seeds included) in
    one request after a raw partition lands; nothing again until the next ingest."""
    from orchestration.definitions import defs

    settings = _settings(tmp_path)
    write(settings.landing, "orders/2025-01-02.csv", f"{ORDERS_HEADER}\n{GOOD}\n")
    dbt_keys = set(features.keys)
    with dg.instance_for_test() as instance:
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert not any(first.get_num_requested(k) for k in dbt_keys)
        from orchestration.defs.ingest import raw_assets

        dg.materialize(raw_assets, instance=instance, partition_key="2025-01-02",
                       resources=resources_for(settings))  # fmt: skip
        after = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                  cursor=first.cursor)  # fmt: skip
        requested = {k for k in dbt_keys if after.get_num_requested(k)}
        assert requested == dbt_keys
        again = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                  cursor=after.cursor)  # fmt: skip
        assert not any(again.get_num_requested(k) for k in dbt_keys)
    assert AFTER_INGEST.get_label() == "after ingest"


def test_features_default_as_of_is_the_end_of_the_newest_loaded_day(tmp_path):
    from ingest.pending import features_as_of

    settings = _settings(tmp_path)
    write(settings.landing, "orders/2025-01-02.csv", f"{ORDERS_HEADER}\n{GOOD}\n")
    write(settings.landing, "orders/2025-01-04.csv", f"{ORDERS_HEADER}\n")
    _load(settings, "2025-01-02")
    _load(settings, "2025-01-04")
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    assert features_as_of(con) == datetime.combine(date(2025, 1, 5), datetime.min.time(), UTC)
