"""Features: ingest + dbt assets materialised by Dagster on a simulated world, and the marts
built as of an old date equal the marts of a warehouse that only ever saw data up to then."""

import shutil
from datetime import date

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from orchestration.defs.features import defs as features_defs
from orchestration.defs.features import features
from orchestration.defs.ingest import raw_assets
from orchestration.features import PUBLIC_MARTS as MARTS
from orchestration.features import dbt_threads
from orchestration.resources import LandingResource
from simulator.writer import simulate

START = date(2025, 1, 1)


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    out = tmp_path_factory.mktemp("features") / "landing"
    simulate(out, customers=800, start=START, days=120, seed=5)
    return out


def _build(warehouse, landing, last_day: str, as_of: str, first_day: str = START.isoformat()):
    resources = {
        "warehouse": DuckDBResource(database=str(warehouse)),
        "landing": LandingResource(path=str(landing)),
    }
    ingest = dg.materialize(
        raw_assets,
        resources=resources,
        tags={
            "dagster/asset_partition_range_start": first_day,
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
    """Every public mart's rows, without loaded_at (when the raw row was loaded: it differs
    between warehouses by design)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        out = {}
        for m in MARTS:
            cols = [r[0] for r in con.execute(f"DESCRIBE marts.{m}").fetchall()]
            kept = ", ".join(c for c in cols if c not in ("loaded_at", "build_id"))
            out[m] = sorted(map(repr, con.execute(f"SELECT {kept} FROM marts.{m}").fetchall()))
        return out
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


def test_a_first_build_runs_one_dbt_thread_and_later_builds_two(monkeypatch):
    monkeypatch.delenv("RETENTEXT_DBT_THREADS", raising=False)
    assert dbt_threads(warehouse_has_marts=False) == 1
    assert dbt_threads(warehouse_has_marts=True) == 2
    monkeypatch.setenv("RETENTEXT_DBT_THREADS", "4")
    assert dbt_threads(warehouse_has_marts=False) == 4


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


def test_incremental_nightly_builds_equal_full_builds(tmp_path, landing):
    """The large facts are rebuilt by day: a build after new days arrive, and one with an
    earlier as_of, give exactly the marts of a warehouse built from scratch; days neither
    new nor near the last as_of are left as they were."""
    nightly = tmp_path / "nightly.duckdb"
    assert _build(nightly, landing, "2025-02-28", "2025-03-01T00:00:00Z").success
    con = duckdb.connect(str(nightly))
    # a marker row on an old day: a full rebuild would drop it, a rebuild by day keeps it
    con.execute("""INSERT INTO marts.fct_events SELECT * REPLACE ('marker' AS event_id)
        FROM marts.fct_events WHERE partition_date = '2025-01-10' LIMIT 1""")
    con.close()
    new_days = _build(nightly, landing, "2025-04-30", "2025-05-01T00:00:00Z", "2025-03-01")
    assert new_days.success
    con = duckdb.connect(str(nightly))
    kept = con.execute("SELECT count(*) FROM marts.fct_events WHERE event_id = 'marker'")
    assert kept.fetchone()[0] == 1
    con.execute("DELETE FROM marts.fct_events WHERE event_id = 'marker'")
    con.close()
    scratch = tmp_path / "scratch.duckdb"
    assert _build(scratch, landing, "2025-04-30", "2025-05-01T00:00:00Z").success
    a, b = _marts(nightly), _marts(scratch)
    for mart in MARTS:
        assert a[mart] == b[mart], mart
    # as_of moves back (a backfill on the same warehouse): rows past it go
    back = dg.materialize(
        [features],
        resources={
            "warehouse": DuckDBResource(database=str(nightly)),
            "landing": LandingResource(path=str(landing)),
            "dbt": features_defs.resources["dbt"],
        },
        run_config={"ops": {"features": {"config": {"as_of": "2025-03-01T00:00:00Z"}}}},
    )
    assert back.success
    then = tmp_path / "then.duckdb"
    assert _build(then, landing, "2025-04-30", "2025-03-01T00:00:00Z").success
    a, b = _marts(nightly), _marts(then)
    for mart in MARTS:
        assert a[mart] == b[mart], mart
    assert len(a["fct_events"]) > 1000


def test_reloaded_lines_and_products_reach_every_mart_incrementally(tmp_path, landing):
    """A day re-delivered with an order line and a consent event gone and a line changed,
    and a product moved to another category: the next build (facts by day, customer
    tables by fingerprint) gives exactly the marts of a warehouse built from scratch on the
    corrected files."""
    land = tmp_path / "landing"
    shutil.copytree(landing, land)
    nightly = tmp_path / "nightly.duckdb"
    assert _build(nightly, land, "2025-02-28", "2025-03-01T00:00:00Z").success
    before = _marts(nightly)
    lines_before, consent_before = len(before["fct_order_lines"]), len(before["fct_consent_events"])
    orders = land / "orders" / "2025-01-20.csv"
    header, _dropped, second, *rest = orders.read_text().splitlines()
    fields = second.split(",")
    qty = header.split(",").index("quantity")
    fields[qty] = str(int(fields[qty]) + 2)
    orders.write_text("\n".join([header, ",".join(fields), *rest]) + "\n")
    consent = land / "consent" / "2025-01-20.csv"
    c_header, _dropped, *c_rest = consent.read_text().splitlines()
    consent.write_text("\n".join([c_header, *c_rest]) + "\n")
    products = land / "products" / f"{START.isoformat()}.csv"
    p_header, p_first, *p_rest = products.read_text().splitlines()
    p_fields = p_first.split(",")
    p_fields[p_header.split(",").index("category")] = "reclassified"
    products.write_text("\n".join([p_header, ",".join(p_fields), *p_rest]) + "\n")
    assert _build(nightly, land, "2025-01-20", "2025-03-01T00:00:00Z").success
    scratch = tmp_path / "scratch.duckdb"
    assert _build(scratch, land, "2025-02-28", "2025-03-01T00:00:00Z").success
    a, b = _marts(nightly), _marts(scratch)
    for mart in MARTS:
        assert a[mart] == b[mart], mart
    assert any("'reclassified'" in row for row in a["customer_category_affinity"])
    assert len(a["fct_order_lines"]) == lines_before - 1  # the dropped line is gone
    assert len(a["fct_consent_events"]) == consent_before - 1
