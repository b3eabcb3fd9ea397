"""Features: ingest + dbt assets materialised by Dagster on a simulated world, and the marts
built as of an old date equal the marts of a warehouse that only ever saw data up to then."""

from datetime import date

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from orchestration.defs.features import defs as features_defs
from orchestration.defs.features import features
from orchestration.defs.ingest import raw_assets
from orchestration.features import PUBLIC_MARTS as MARTS
from orchestration.resources import LandingResource
from simulator.writer import simulate

START = date(2025, 1, 1)


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    out = tmp_path_factory.mktemp("features") / "landing"
    simulate(out, customers=800, start=START, days=120, seed=5)
    return out


def _build(warehouse, landing, last_day: str, as_of: str):
    resources = {
        "warehouse": DuckDBResource(database=str(warehouse)),
        "landing": LandingResource(path=str(landing)),
    }
    ingest = dg.materialize(
        raw_assets,
        resources=resources,
        tags={
            "dagster/asset_partition_range_start": START.isoformat(),
            "dagster/asset_partition_range_end": last_day,
        },
    )
    assert ingest.success
    built = dg.materialize(
        [features],
        resources={**resources, "dbt": features_defs.resources["dbt"]},
        run_config={"ops": {"features": {"config": {"as_of": as_of}}}},
    )
    return built


def _marts(warehouse) -> dict[str, list]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {
            m: sorted(map(repr, con.execute(f"SELECT * FROM marts.{m}").fetchall())) for m in MARTS
        }
    finally:
        con.close()


def test_ingest_and_dbt_assets_materialise_with_passing_checks(tmp_path, landing):
    built = _build(tmp_path / "w.duckdb", landing, "2025-04-30", "2025-05-01T00:00:00Z")
    assert built.success
    keys = {
        m.asset_key.to_user_string()
        for m in built.get_asset_materialization_events()
        for m in [m.event_specific_data.materialization]
    }
    assert {f"marts/{m}" for m in MARTS} <= keys
    checks = built.get_asset_check_evaluations()
    assert len(checks) > 40  # unique/not_null/accepted_values/relationships as asset checks
    failed = [c.check_name for c in checks if not c.passed]
    assert failed == [], failed
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    stages = {
        r[0]
        for r in con.execute("SELECT DISTINCT lifecycle_stage FROM marts.dim_customers").fetchall()
    }
    assert {"prospect", "new", "active"} <= stages
    statuses = {
        r[0]
        for r in con.execute("SELECT DISTINCT status FROM marts.customer_replenishment").fetchall()
    }
    assert {"not_due", "due"} <= statuses


def test_backfill_as_of_an_old_date_equals_a_run_on_that_date(tmp_path, landing):
    """No future leakage: everything loaded vs only what had landed by then."""
    as_of = "2025-03-01T00:00:00Z"
    full, then = tmp_path / "full.duckdb", tmp_path / "then.duckdb"
    assert _build(full, landing, "2025-04-30", as_of).success
    assert _build(then, landing, "2025-02-28", as_of).success
    a, b = _marts(full), _marts(then)
    for mart in MARTS:
        assert a[mart] == b[mart], mart
    assert len(a["fct_orders"]) > 100
