"""Features: ingest + dbt assets materialised by Dagster on a simulated world, and the marts
built as of an old date equal the marts of a warehouse that only ever saw data up to then."""

import json
import os
import shutil
from datetime import date

import dagster as dg
import duckdb
import pytest

from orchestration.defs.common import resources as resources_for
from orchestration.defs.features import defs as features_defs
from orchestration.defs.features import features
from orchestration.defs.ingest import raw_assets
from simulator.writer import simulate
from warehouse.contract import create_marts_sql, public_marts
from warehouse.dbt_build import (
    DBT_DIR,
    dbt_threads,
    ensure_manifest,
    keep_partial_parse,
    parse_state,
    prune_build_folders,
    restore_partial_parse,
)
from warehouse.settings import Settings

MARTS = [m.name for m in public_marts()]

START = date(2025, 1, 1)
# one worker builds the shared warehouses below and runs every test that reads them
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("features")]


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    out = tmp_path_factory.mktemp("features") / "landing"
    simulate(out, customers=800, start=START, days=120, seed=5, changes=0.05)  # records change
    return out


@pytest.fixture(scope="module")
def scratch(tmp_path_factory, landing):
    """Warehouses built from scratch, one per (last landing day, as_of) and reused by the
    tests that compare against them; a test that changes one works on a copy."""
    root, done = tmp_path_factory.mktemp("scratch"), {}

    def get(last_day: str, as_of: str):
        if (last_day, as_of) not in done:
            path = root / f"{last_day}_{as_of[:10]}.duckdb"
            result = _build(path, landing, last_day, as_of)
            assert result.success
            done[last_day, as_of] = path, result
        return done[last_day, as_of]

    return get


def pipeline_resources(warehouse, landing) -> dict:
    settings = Settings.from_env(
        {"RETENTEXT_WAREHOUSE": str(warehouse), "RETENTEXT_LANDING": str(landing)}
    )
    return resources_for(settings)


def _build(warehouse, landing, last_day: str, as_of: str, first_day: str = START.isoformat()):
    resources = pipeline_resources(warehouse, landing)
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


def _column_types(con) -> dict[str, str]:
    try:
        return dict(con.execute(
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'marts'").fetchall())  # fmt: skip
    finally:
        con.close()


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


def test_every_public_mart_column_is_described(scratch):
    """The contract a BI tool reads: each built column of each public mart has a description
    in the marts YAML (dbt's manifest), and no described column is missing from the build."""
    warehouse, _ = scratch("2025-04-30", "2025-05-01T00:00:00Z")
    # and typed as the contract types it: the build and the contract's DDL agree on DuckDB
    contract = duckdb.connect()
    contract.execute(create_marts_sql())
    assert _column_types(contract) == _column_types(duckdb.connect(str(warehouse), read_only=True))
    manifest = json.loads(ensure_manifest(DBT_DIR).read_text())
    documented = {n["name"]: {c: v.get("description", "") for c, v in n["columns"].items()}
                  for n in manifest["nodes"].values()
                  if n["resource_type"] == "model" and n["name"] in MARTS}  # fmt: skip
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        for mart in MARTS:
            built = {r[0] for r in con.execute(f"DESCRIBE marts.{mart}").fetchall()}
            described = {c for c, text in documented[mart].items() if text.strip()}
            assert built == described, (mart, built ^ described)
    finally:
        con.close()


def test_ingest_and_dbt_assets_materialise_with_passing_checks(scratch):
    warehouse, built = scratch("2025-04-30", "2025-05-01T00:00:00Z")
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
    con = duckdb.connect(str(warehouse), read_only=True)
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


def test_a_first_build_runs_one_dbt_thread_and_later_builds_two():
    assert dbt_threads(warehouse_has_marts=False) == 1
    assert dbt_threads(warehouse_has_marts=True) == 2
    threads = Settings.from_env({"RETENTEXT_DBT_THREADS": "4"}).dbt_threads
    assert dbt_threads(warehouse_has_marts=False, override=threads) == 4


def test_only_the_newest_dbt_build_folders_are_kept(tmp_path):
    for i in range(13):
        folder = tmp_path / f"features-run{i:02d}-abc"
        folder.mkdir()
        (folder / "run_results.json").write_text("{}")
        os.utime(folder, (1_700_000_000 + i, 1_700_000_000 + i))  # run00 is the oldest
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "compiled").mkdir()
    deleted = prune_build_folders(tmp_path, "features", keep=10)
    assert sorted(p.name for p in deleted) == [f"features-run{i:02d}-abc" for i in range(3)]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["compiled"] + [f"features-run{i:02d}-abc" for i in range(3, 13)] + [
        "manifest.json"
    ]


def test_each_warehouse_keeps_the_dbt_parse_state_of_its_last_build(tmp_path):
    target = tmp_path / "target"
    a, b = parse_state(target, "/w/a.duckdb"), parse_state(target, "/w/b.duckdb")
    assert a != b and a == parse_state(target, "/w/../w/a.duckdb")
    build = tmp_path / "build-1"
    assert not restore_partial_parse(a, build)  # nothing kept yet: dbt parses it all
    assert not keep_partial_parse(build, a)  # a failed build leaves no state
    build.mkdir()
    (build / "partial_parse.msgpack").write_bytes(b"state of a")
    assert keep_partial_parse(build, a)
    assert restore_partial_parse(a, tmp_path / "build-2")
    assert (tmp_path / "build-2" / "partial_parse.msgpack").read_bytes() == b"state of a"
    assert not restore_partial_parse(b, tmp_path / "build-3")
    many = tmp_path / "many"
    for i in range(12):  # the states of the ten warehouses built into last are kept
        (build / "partial_parse.msgpack").write_bytes(f"state {i}".encode())
        keep_partial_parse(build, parse_state(many, f"/w/{i}.duckdb"), keep=10)
        os.utime(parse_state(many, f"/w/{i}.duckdb"), (1_700_000_000 + i,) * 2)
    left = {p.read_bytes() for p in parse_state(many, "/w/0.duckdb").parent.iterdir()}
    assert left == {f"state {i}".encode() for i in range(2, 12)}


def test_backfill_as_of_an_old_date_equals_a_run_on_that_date(scratch):
    """No future leakage: everything loaded vs only what had landed by then."""
    as_of = "2025-03-01T00:00:00Z"
    full, _ = scratch("2025-04-30", as_of)
    then, _ = scratch("2025-02-28", as_of)
    a, b = _marts(full), _marts(then)
    for mart in MARTS:
        assert a[mart] == b[mart], mart
    assert len(a["fct_orders"]) > 100
    # the data changes after as_of, and the marts as of then do not show it: lines refunded
    # or cancelled later were still sold, phones changed later were still the old ones
    later, _ = scratch("2025-04-30", "2025-05-01T00:00:00Z")
    changed_lines = _changed_after(later, as_of, "fct_order_lines", "order_line_id", "status")
    changed_phones = _changed_after(later, as_of, "dim_customers", "customer_id", "phone_e164")
    assert len(changed_lines) >= 2 and len(changed_phones) >= 3  # the world is seeded
    con = duckdb.connect(str(full), read_only=True)
    for key, table, column, changed in (
        ("order_line_id", "fct_order_lines", "status", changed_lines),
        ("customer_id", "dim_customers", "phone_e164", changed_phones),
    ):
        then_values = dict(con.execute(
            f"SELECT {key}, {column} FROM marts.{table} WHERE {key} IN ?", [list(changed)]
        ).fetchall())  # fmt: skip
        assert then_values == {k: old for k, (old, _new) in changed.items()}, table
    con.close()


def _changed_after(warehouse, as_of: str, table: str, key: str, column: str) -> dict:
    """Rows of ``table`` whose ``column`` differs between raw versions before and after
    ``as_of``: key -> (value then, value later), read from the later warehouse's raw data."""
    raw = {"fct_order_lines": ("orders", "order_id || '-' || order_line_no", "ordered_at"),
           "dim_customers": ("customers", "customer_id", "created_at")}[table]  # fmt: skip
    source, raw_key, since = raw
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            f"""
            WITH v AS (SELECT {raw_key} AS k, {column} AS value,
                              coalesce(updated_at, {since}) AS valid_from FROM raw.{source}),
            at_as_of AS (SELECT k, arg_max(value, valid_from) AS value FROM v
                         WHERE valid_from <= ?::TIMESTAMP GROUP BY k),
            latest AS (SELECT k, arg_max(value, valid_from) AS value FROM v GROUP BY k)
            SELECT k, a.value, l.value FROM at_as_of AS a JOIN latest AS l USING (k)
            WHERE a.value <> l.value""",
            [as_of[:19]],
        ).fetchall()
    finally:
        con.close()
    return {k: (old, new) for k, old, new in rows}


def test_incremental_nightly_builds_equal_full_builds(tmp_path, landing, scratch):
    """The large facts are rebuilt by day: a build after new days arrive, and one with an
    earlier as_of, give exactly the marts of a warehouse built from scratch; days neither
    new nor near the last as_of are left as they were."""
    nightly = tmp_path / "nightly.duckdb"
    shutil.copy(scratch("2025-02-28", "2025-03-01T00:00:00Z")[0], nightly)
    con = duckdb.connect(str(nightly))
    # a marker row on an old day: a full rebuild would drop it, a rebuild by day keeps it
    con.execute("""INSERT INTO marts.fct_events SELECT * REPLACE ('marker' AS event_id)
        FROM marts.fct_events WHERE partition_date = '2025-01-10' LIMIT 1""")
    con.close()
    new_days = _build(nightly, landing, "2025-04-30", "2025-05-01T00:00:00Z", "2025-03-01")
    assert new_days.success
    new_days_log = _dbt_log(new_days)  # now: other tests' builds prune old build folders
    con = duckdb.connect(str(nightly))
    kept = con.execute("SELECT count(*) FROM marts.fct_events WHERE event_id = 'marker'")
    assert kept.fetchone()[0] == 1
    con.execute("DELETE FROM marts.fct_events WHERE event_id = 'marker'")
    con.close()
    a, b = _marts(nightly), _marts(scratch("2025-04-30", "2025-05-01T00:00:00Z")[0])
    for mart in MARTS:
        assert a[mart] == b[mart], mart
    # as_of moves back (a backfill on the same warehouse): rows past it go
    back = dg.materialize(
        [features],
        resources={**pipeline_resources(nightly, landing), "dbt": features_defs.resources["dbt"]},
        run_config={"ops": {"features": {"config": {"as_of": "2025-03-01T00:00:00Z"}}}},
    )
    assert back.success
    back_log = _dbt_log(back)
    a, b = _marts(nightly), _marts(scratch("2025-04-30", "2025-03-01T00:00:00Z")[0])
    for mart in MARTS:
        assert a[mart] == b[mart], mart
    assert len(a["fct_events"]) > 1000
    # as_of is not a dbt var, so the build that moved it back re-parsed nothing: it started
    # from the parse state the build before it left for this warehouse (and the marts above
    # show that as_of still reached every model)
    assert "Unable to do partial parsing" in new_days_log  # the first build into it
    assert "Unable to do partial parsing" not in back_log


def _dbt_log(result: dg.ExecuteInProcessResult) -> str:
    (log,) = (DBT_DIR / "target").glob(f"features-{result.run_id[:7]}-*/dbt.log")
    return log.read_text()


def test_reloaded_lines_and_products_reach_every_mart_incrementally(tmp_path, landing, scratch):
    """A day re-delivered with an order line and a consent event gone and a line changed,
    and a product moved to another category: the next build (facts by day, customer
    tables by fingerprint) gives exactly the marts of a warehouse built from scratch on the
    corrected files."""
    land = tmp_path / "landing"
    shutil.copytree(landing, land)
    nightly = tmp_path / "nightly.duckdb"  # built on the same files before they change
    shutil.copy(scratch("2025-02-28", "2025-03-01T00:00:00Z")[0], nightly)
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
    rebuilt = tmp_path / "rebuilt.duckdb"
    assert _build(rebuilt, land, "2025-02-28", "2025-03-01T00:00:00Z").success
    a, b = _marts(nightly), _marts(rebuilt)
    for mart in MARTS:
        assert a[mart] == b[mart], mart
    assert any("'reclassified'" in row for row in a["customer_category_affinity"])
    assert len(a["fct_order_lines"]) == lines_before - 1  # the dropped line is gone
    assert len(a["fct_consent_events"]) == consent_before - 1
