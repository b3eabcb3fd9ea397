"""The same dbt project on Apache Spark (pyspark session, local) gives the same marts."""

import io
import shutil
from contextlib import redirect_stdout
from datetime import date

import duckdb
import pytest

from orchestration.cli import main
from simulator.writer import simulate
from warehouse.contract import create_marts_sql, public_marts
from warehouse.engines import compare_marts

pytest.importorskip("pyspark", reason="needs the spark extra: pip install -e '.[spark]'")


# one worker runs the Spark build once for both tests
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("engines")]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """Both dbt builds (tests included) on one simulated world, and what the comparison
    printed."""
    root = tmp_path_factory.mktemp("engines")
    simulate(
        root / "landing", customers=400, start=date(2025, 1, 1), days=50, seed=9, bad_rows=0.005
    )
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(
            [
                "compare-engines",
                "--landing",
                str(root / "landing"),
                "--as-of",
                "2025-02-20T06:00:00Z",
                "--work",
                str(root / "work"),
                "--spark-dir",
                str(root / "spark"),
            ]
        )
    return root, code, out.getvalue().strip().splitlines()


def test_every_mart_identical_on_duckdb_and_spark(compared):
    root, code, out = compared
    assert out[-1] == "differing rows: 0"
    assert code == 0  # and both dbt builds, tests included, passed (they raise otherwise)
    # every Spark file stayed under the spark folder
    assert (root / "spark" / "metastore").is_dir()
    assert (root / "spark" / "warehouse" / "marts.db" / "dim_customers").is_dir()
    # and both engines built every column with the type the contract gives it
    con = duckdb.connect()
    con.execute(create_marts_sql())
    for mart in public_marts():
        contract = con.execute(f"DESCRIBE marts.{mart.name}").fetchall()
        schema, table = mart.stored_in  # a view's rows are its store's files
        files = root / "spark" / "warehouse" / f"{schema}.db" / table / "**" / "*.parquet"
        spark = con.execute(
            f"DESCRIBE SELECT * FROM read_parquet('{files}', hive_partitioning = true)"
        ).fetchall()
        duck = duckdb.connect(str(root / "work" / "warehouse.duckdb"), read_only=True)
        built = duck.execute(f"DESCRIBE marts.{mart.name}").fetchall()
        duck.close()
        expected = {r[0]: r[1] for r in contract}
        assert {r[0]: r[1] for r in built} == expected, mart.name
        assert {r[0]: r[1] for r in spark} == expected, mart.name


def test_comparison_sees_a_changed_value(compared):
    """Negative controls: a changed value and a missing row are one differing row each."""
    root, _, _ = compared
    changed = root / "changed.duckdb"
    shutil.copy(root / "work" / "warehouse.duckdb", changed)
    con = duckdb.connect(str(changed))
    con.execute(
        "UPDATE marts.dim_customers SET loyalty_points = loyalty_points + 1 WHERE "
        "customer_id = (SELECT min(customer_id) FROM marts.dim_customers)"
    )
    con.execute(
        "DELETE FROM marts.fct_events WHERE event_id = (SELECT max(event_id) FROM marts.fct_events)"
    )
    con.close()
    diffs = {d.mart: d.differing_rows for d in compare_marts(changed, root / "spark")}
    assert diffs["dim_customers"] == 1
    assert diffs["fct_events"] == 1
    assert sum(diffs.values()) == 2
