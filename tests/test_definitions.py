"""Dagster definitions load, and real materializations report rows and the GE check."""

import re

import dagster as dg
import duckdb

from orchestration.definitions import defs
from orchestration.defs.common import resources as resources_for
from warehouse.contract import public_marts
from warehouse.settings import Settings

from .test_ingest import GOOD, ORDERS_HEADER, write

SOURCES = ["customers", "products", "orders", "events", "consent"]
WRITERS = {"raw", "staging", "intermediate", "marts", "reference", "sends", "experiments"}


def test_definitions_load_with_assets_checks_and_schedule():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {f"raw/{s}" for s in SOURCES} <= keys
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert {(f"raw/{s}", "great_expectations") for s in SOURCES} <= checks
    assert {(f"raw/{s}", "quarantine_share") for s in SOURCES} <= checks
    assert defs.resolve_job_def("ingest_job") is not None
    assert {"sends/run", "sends/receipts", "experiments/campaign_results"} <= keys


def test_schedules_and_sensors_start_running_with_the_daemon():
    running = dg.DefaultSensorStatus.RUNNING
    assert {s.name: s.default_status for s in defs.sensors} == {
        "landing_sensor": running,
        "gateway_receipts_sensor": running,
        "nightly_automation": running,
        "freshness_checks_sensor": running,
        "run_failure_alert": running,
    }
    assert {s.name: s.default_status for s in defs.schedules} == {
        "hourly_send_schedule": dg.DefaultScheduleStatus.RUNNING
    }


def test_every_writer_of_the_warehouse_is_in_the_one_pool():
    graph = defs.resolve_asset_graph()
    writers = [k for k in graph.get_all_asset_keys() if k.path[0] in WRITERS]
    assert len(writers) > 20  # raw, every dbt node, sends, experiments
    for key in writers:
        assert graph.get(key).pools == {"warehouse"}, key.to_user_string()


def test_the_marts_and_consent_have_freshness_checks():
    graph = defs.resolve_asset_graph()
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    fresh = {key for key, name in checks if "freshness" in name}
    assert "raw/consent" in fresh
    assert {f"marts/{m.name}" for m in public_marts()} <= fresh


def test_every_asset_has_a_description_a_group_and_kinds():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.is_external:
            continue
        text = node.description or ""
        assert text and not re.search(r"(?i)\bselect\b.*\bfrom\b", text), key
        assert "no description" not in text, key
        assert node.group_name in {"ingest", "features", "sends", "experiments"}, key
        assert node.kinds, key


def _materialize(tmp_path, landing, partition):
    asset = defs.get_assets_def(dg.AssetKey(["raw", "orders"]))
    return dg.materialize(
        [asset],
        partition_key=partition,
        raise_on_error=False,
        resources=resources_for(
            Settings.from_env(
                {
                    "RETENTEXT_WAREHOUSE": str(tmp_path / "w.duckdb"),
                    "RETENTEXT_LANDING": str(landing),
                }
            )
        ),  # fmt: skip
    )


def test_materialize_partition_reports_counts_and_passing_check(tmp_path):
    landing = tmp_path / "landing"
    write(
        landing,
        "orders/2025-01-02.csv",
        f"{ORDERS_HEADER}\n{GOOD}\n{GOOD.replace('O1,1', 'O1,2')},extra\n",
    )
    result = _materialize(tmp_path, landing, "2025-01-02")
    assert result.success
    (mat,) = result.asset_materializations_for_node(result.all_node_events[0].node_name)
    assert mat.metadata["loaded_range"].value == "2025-01-02..2025-01-02"
    assert mat.metadata["rows_read"].value == 2
    assert mat.metadata["rows_accepted"].value == 1
    assert mat.metadata["rows_quarantined"].value == 1
    assert mat.metadata["reconciled"].value is True
    assert mat.metadata["quarantine_reasons"].value == {"wrong column count": 1}
    assert "file_notes" not in mat.metadata and "extra_columns" not in mat.metadata  # none
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["great_expectations"].passed
    # one row of two quarantined: far above the 2% default, so the share check warns
    share = checks["quarantine_share"]
    assert not share.passed and share.severity == dg.AssetCheckSeverity.WARN
    assert share.metadata["share"].value == 0.5
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM raw.orders").fetchone()[0] == 1


def test_ge_check_fails_on_a_batch_built_to_fail(tmp_path):
    landing = tmp_path / "landing"
    implausible = GOOD.replace(",10.00,", ",50000.00,")  # valid row, implausible price
    write(landing, "orders/2025-01-02.csv", f"{ORDERS_HEADER}\n{implausible}\n")
    result = _materialize(tmp_path, landing, "2025-01-02")
    assert result.success  # the rows load; the check is what flags them
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["quarantine_share"].passed  # nothing quarantined
    check = checks["great_expectations"]
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.ERROR
    assert "unit_price" in str(check.metadata["failed"].value)
