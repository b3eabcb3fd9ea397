"""The scale harness in smoke form: 10k customers over 8 days, every stage, the floor checked
against the dbt marts row for row, and the result file holding the figures the README shows."""

import json
import os
import subprocess
import sys

import duckdb
import pytest

from benchmarks.run import (
    World,
    _as_simulated,
    _new_warehouse,
    compare_floor,
    dbt_build_figures,
    floor_sql,
)
from warehouse.dbt_build import parse_state

KEYS = {"customers", "order_lines", "events", "stages", "floor_seconds",
        "ratio_ingest_features", "render_msgs_per_s", "peak_rss_mb", "machine"}  # fmt: skip


@pytest.mark.slow
def test_smoke_run_at_10k_customers(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--customers", "10000", "--smoke",
         "--work", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads((tmp_path / "10000-8d" / "10000.json").read_text())
    assert result.keys() >= KEYS
    assert list(result["stages"]) == [
        "simulate", "floor_before", "ingest", "features", "floor", "nightly_ingest",
        "nightly_features", "send", "render", "experiments", "reports",
    ]  # fmt: skip
    for name, stage in result["stages"].items():
        assert stage["seconds"] > 0 and stage["peak_rss_mb"] > 0, name
        assert stage["rows_per_s"] == round(stage["rows"] / stage["seconds"]), name
    stages = result["stages"]
    # every landing row of days 1..7 was read by ingest and typed by the floor
    assert stages["ingest"]["rows"] == stages["floor"]["rows"] > 25_000
    assert stages["floor_before"]["rows"] == stages["floor"]["rows"]
    # the ratio's denominator is the mean of the floor's two runs
    runs = [stages["floor_before"]["seconds"], stages["floor"]["seconds"]]
    assert result["floor_runs"] == runs
    assert result["floor_seconds"] == pytest.approx(sum(runs) / 2)
    assert result["floor_agrees"] is True
    assert all(m["rows"] > 0 for m in stages["floor"]["agreement"].values())
    assert stages["nightly_features"]["new_day_events"] > 0  # day 8 reached the facts
    assert stages["send"]["rendered"] > 0 and result["render_msgs_per_s"] > 0
    assert result["ratio_ingest_features"] == round(
        (stages["ingest"]["seconds"] + stages["features"]["seconds"]) / result["floor_seconds"], 2
    )
    # dbt's own time is part of the stage's, and the ratio inside dbt is of those times
    for name in ("features", "nightly_features"):
        assert 0 < stages[name]["dbt_seconds"] < stages[name]["seconds"], name
        assert len(stages[name]["slowest_nodes"]) == 5, name
    assert result["incremental_over_full_inside_dbt"] == round(
        stages["nightly_features"]["dbt_seconds"] / stages["features"]["dbt_seconds"], 3
    )
    assert "| ingest |" in (tmp_path / "10000-8d" / "10000.md").read_text()


def test_dbt_build_figures_come_from_the_build_written_during_the_stage(tmp_path):
    def build(name: str, elapsed: float, times: dict[str, float], mtime: float) -> None:
        folder = tmp_path / name
        folder.mkdir()
        results = [{"unique_id": uid, "execution_time": t} for uid, t in times.items()]
        path = folder / "run_results.json"
        path.write_text(json.dumps({"elapsed_time": elapsed, "results": results}))
        os.utime(path, (mtime, mtime))

    build("features-old-1", 99.0, {"model.retentext.stale": 50.0}, mtime=1_000)
    build("features-new-2", 12.5, {
        "model.retentext.fct_events": 3.0, "test.retentext.unique_x_id.ab12": 4.5,
        "unit_test.retentext.dim_customers.tiers": 0.2, "seed.retentext.tiers": 0.1,
    }, mtime=2_000)  # fmt: skip
    figures = dbt_build_figures(tmp_path, since=1_500, slowest=2)
    assert figures == {
        "dbt_seconds": 12.5,
        "slowest_nodes": [["unique_x_id.ab12", 4.5], ["fct_events", 3.0]],
    }
    assert dbt_build_figures(tmp_path, since=2_500) == {}  # no build during the stage


def test_floor_check_finds_a_changed_row(tmp_path):
    """The agreement check is not vacuous: one changed value in a mart is two differing rows."""
    con = duckdb.connect(str(tmp_path / "x.duckdb"))
    con.execute("ATTACH ':memory:' AS wh")
    con.execute("CREATE SCHEMA wh.marts")
    con.execute("CREATE SCHEMA floor")
    for mart in ["dim_customers", "customer_replenishment", "customer_consent",
                 "customer_category_affinity"]:  # fmt: skip
        for table in (f"wh.marts.{mart}", f"floor.{mart}"):
            con.execute(f"CREATE TABLE {table} AS SELECT range AS k, range * 2 AS v FROM range(5)")
    con.execute("UPDATE floor.customer_consent SET v = -1 WHERE k = 3")
    agreement = compare_floor(con)
    assert agreement["customer_consent"] == {"rows": 5, "only_in_dbt": 1, "only_in_floor": 1}
    assert agreement["dim_customers"] == {"rows": 5, "only_in_dbt": 0, "only_in_floor": 0}


def test_floor_sql_has_every_placeholder_filled(tmp_path):
    world = World(tmp_path, 10, 3)
    text = floor_sql(world, world.backfill_as_of)
    assert "{landing}" not in text and "{seeds}" not in text and "{as_of}" not in text
    assert str(world.landing) in text and "2024-01-03 00:00:00" in text


def test_day_n_and_responses_are_out_of_the_landing_before_either_floor_run_or_ingest(
    tmp_path,
):
    """A previous harness run leaves day N and the world's responses to its sends in the
    landing folder; the floor's first run and ingest must both read days 1..N-1 only."""
    world = World(tmp_path, 10, 3)
    kept = world.landing / "orders" / "2024-01-02.csv"
    day_n = world.landing / "orders" / f"{world.last.isoformat()}.csv"
    responses = world.landing / "orders" / "2024-01-05.resp-seed1.csv"
    for f in (kept, day_n, responses):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("order_id\n")
    _as_simulated(world)
    assert kept.exists() and not day_n.exists() and not responses.exists()


def test_ingest_starts_a_new_warehouse_without_its_dbt_parse_state(tmp_path):
    world, other = World(tmp_path, 10, 3), World(tmp_path, 20, 3)
    target = tmp_path / "target"
    for w in (world, other):
        w.root.mkdir(parents=True)
        w.warehouse.write_bytes(b"old")
        parse_state(target, str(w.warehouse)).parent.mkdir(parents=True, exist_ok=True)
        parse_state(target, str(w.warehouse)).write_bytes(b"state")
    _new_warehouse(world, target)
    assert not world.warehouse.exists()
    assert not parse_state(target, str(world.warehouse)).exists()
    assert other.warehouse.exists() and parse_state(target, str(other.warehouse)).exists()
