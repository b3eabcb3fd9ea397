"""`retentext simulate` and `retentext run` end to end, in process, on a real DuckDB file."""

import contextlib
import io
import os
import shutil
from datetime import date

import dagster as dg
import duckdb
import pytest
from dagster import DagsterEventType

from ingest.spec import sources
from orchestration.cli import main
from orchestration.cli.ingest import PLANNED_EVENTS_ENV, _one_planned_event_per_asset

from .conftest import WORLD

SOURCES = list(sources())
# one worker builds the module's shared fixture once
pytestmark = pytest.mark.xdist_group("cli")


@pytest.fixture(scope="module")
def ran(bad_world, tmp_path_factory):
    """One `retentext run` shared by the module's tests (each is about 20 s); a test that runs
    again works on its own copy."""
    landing, _ = bad_world
    root = tmp_path_factory.mktemp("ran")
    dagster_home = root / "dagster"  # run history on disk
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    warehouse = root / "w.duckdb"
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(err):
        patch.setenv("DAGSTER_HOME", str(dagster_home))
        code = main(["run", "--landing", str(landing), "--as-of", "2025-01-21T06:00:00Z",
                     "--warehouse", str(warehouse)])  # fmt: skip
    return code, landing, warehouse, err.getvalue(), dagster_home


def test_run_loads_complete_days_up_to_as_of_logs_them_in_dagster_and_prints_summary(
    ran, monkeypatch
):
    code, _, warehouse, err, dagster_home = ran
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    assert code == 0
    assert "accepted" in err and "quarantined" in err and str(warehouse) in err
    con = duckdb.connect(str(warehouse), read_only=True)
    days = con.execute(
        "SELECT min(partition_date), max(partition_date) FROM raw.load_files"
    ).fetchone()
    assert str(days[0]) == "2025-01-01" and str(days[1]) == "2025-01-20"  # 01-21 is not over
    for source in SOURCES:
        assert con.execute(f"SELECT count(*) FROM raw.{source}").fetchone()[0] > 0
    unreconciled = con.execute(
        "SELECT count(*) FROM raw.load_files WHERE rows_read <> "
        "rows_accepted + rows_quarantined + duplicates_dropped"
    ).fetchone()
    assert unreconciled[0] == 0
    # Dagster's record of the load (the fixture keeps it on disk): one planned event per
    # asset for the whole range, one materialisation per asset and day
    instance = dg.DagsterInstance.get()
    loads = [r for r in instance.get_runs() if "dagster/asset_partition_range_start" in r.tags]
    assert loads
    for run in loads:
        n_days = (
            date.fromisoformat(run.tags["dagster/asset_partition_range_end"])
            - date.fromisoformat(run.tags["dagster/asset_partition_range_start"])
        ).days + 1
        planned = instance.all_logs(run.run_id, DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
        done = instance.all_logs(run.run_id, DagsterEventType.ASSET_MATERIALIZATION)
        assert len(planned) == len(SOURCES)  # not one per day and source
        assert len(done) == len(SOURCES) * n_days
    assert PLANNED_EVENTS_ENV not in os.environ  # set for the load only


def test_a_planned_events_setting_of_the_users_own_is_kept(monkeypatch):
    monkeypatch.delenv(PLANNED_EVENTS_ENV, raising=False)
    with _one_planned_event_per_asset():
        assert os.environ[PLANNED_EVENTS_ENV] == "true"
    assert PLANNED_EVENTS_ENV not in os.environ
    monkeypatch.setenv(PLANNED_EVENTS_ENV, "false")
    with _one_planned_event_per_asset():
        assert os.environ[PLANNED_EVENTS_ENV] == "false"
    assert os.environ[PLANNED_EVENTS_ENV] == "false"


@pytest.mark.slow
def test_second_run_loads_nothing_new_then_later_as_of_continues(ran, capsys, tmp_path,
                                                                monkeypatch):  # fmt: skip
    _, landing, shared, _, dagster_home = ran
    warehouse = tmp_path / "w.duckdb"
    shutil.copy(shared, warehouse)
    shutil.copytree(dagster_home, tmp_path / "dagster")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    args = ["run", "--landing", str(landing), "--warehouse", str(warehouse)]
    assert main([*args, "--as-of", "2025-01-21T06:00:00Z"]) == 0
    assert "nothing new to load" in capsys.readouterr().err
    assert main([*args, "--as-of", "2025-02-20T00:00:00Z"]) == 0
    con = duckdb.connect(str(warehouse), read_only=True)
    last = con.execute("SELECT max(partition_date) FROM raw.load_files").fetchone()[0]
    assert str(last) == "2025-02-14"  # the world's last day (45 days from 2025-01-01)
    assert WORLD["days"] == 45


def test_clear_errors(tmp_path, capsys):
    assert (
        main(["run", "--landing", str(tmp_path / "nope"), "--as-of", "2025-01-01T00:00:00Z"]) == 2
    )
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "--landing", str(tmp_path), "--as-of", "2025-01-01 00:00"])
    assert "no time zone" in capsys.readouterr().err


def test_simulate_command(tmp_path, capsys):
    assert (
        main(
            [
                "simulate",
                "--out",
                str(tmp_path / "l"),
                "--customers",
                "50",
                "--days",
                "3",
                "--start",
                "2025-03-01",
                "--seed",
                "2",
            ]
        )
        == 0
    )
    assert (tmp_path / "l" / "orders").is_dir()
    assert "wrote" in capsys.readouterr().err


def test_values_that_look_like_rich_markup_are_printed_as_they_are(capsys):
    from types import SimpleNamespace

    from ingest.landing import Stray
    from orchestration.cli.ingest import _print_strays
    from orchestration.cli.send import _print_qa

    summary = {
        "outcomes": [("SKU[/x]", "sent", "[/b] header", 3)],
        "fallbacks": [("c[bold]", "[/]", 1, 50.0)],
        "encoding": [("GSM-7", 1, 3)],
        "cost": [("[red]c", 3, 3, 0.02)],
    }
    _print_qa(summary, SimpleNamespace(run_id="run[/i]"), 0.1)
    _print_strays([Stray("orders/[/b].csv", "name does not fit")])
    err = capsys.readouterr().err
    for shown in ("SKU[/x]", "[/b] header", "c[bold]", "[/]", "[red]c", "run[/i]",
                  "orders/[/b].csv"):  # fmt: skip
        assert shown in err


def test_the_demos_campaigns_and_its_truth_table(tmp_path):
    import pandas as pd
    from rich.console import Console

    from experiments.analysis import NO_HOLDOUT_BY_DESIGN
    from orchestration.cli.demo import (
        DEMO_HOLDOUT,
        DEMO_PLANNED_UNITS,
        demo_campaigns,
        truth_table,
    )
    from send_jobs.campaign_specs import load_campaigns

    shipped = {c.id: c for c in load_campaigns()}
    copies = {c.id: c for c in load_campaigns(demo_campaigns(tmp_path / "campaigns"))}
    assert set(copies) == set(shipped)
    for campaign_id, c in copies.items():  # a service message keeps no holdout
        held = bool(shipped[campaign_id].holdout_share)
        assert c.holdout_share == (DEMO_HOLDOUT if held else 0.0), campaign_id
        assert c.planned_units == (DEMO_PLANNED_UNITS if held else None), campaign_id
        assert c.variants == shipped[campaign_id].variants
    row = {"comparison": "vs_holdout", "segment": "all", "metric": "conversion",
           "n_treatment": 1475, "n_control": 1473, "rel_lift": 0.143, "rel_ci_low": 0.032,
           "rel_ci_high": 0.254, "seq_rel_ci_low": -0.031, "seq_rel_ci_high": 0.316}  # fmt: skip
    service = {**row, "campaign_id": "appointment_reminder", "n_control": 0,
               "rel_lift": float("nan"), "note": NO_HOLDOUT_BY_DESIGN}  # fmt: skip
    nan = float("nan")
    # nobody held out ordered: no relative lift, so no interval to hold the truth
    tiny = {**row, "campaign_id": "tiny", "rel_lift": nan, "rel_ci_low": nan,
            "rel_ci_high": nan, "note": ""}  # fmt: skip
    results = pd.DataFrame([{**row, "campaign_id": "replenishment_reminder"},
                            {**row, "campaign_id": "quiet", "rel_ci_high": -0.01},
                            service, tiny])  # fmt: skip
    console = Console(record=True, width=250)
    console.print(truth_table(results, {"replenishment_reminder": 0.25}))
    lines = console.export_text().splitlines()
    [replenishment] = [line for line in lines if "replenishment_reminder" in line]
    cells = [cell.strip() for cell in replenishment.split("│")]
    assert cells[2:6] == ["+25%", "1,475", "1,473", "+14.3%"] and cells[-2] == "yes"
    [quiet] = [line for line in lines if "quiet" in line]
    cells = [cell.strip() for cell in quiet.split("│")]
    assert cells[2] == "+0%" and cells[-2] == "no"  # its interval misses the truth
    [appointment] = [line for line in lines if "appointment_reminder" in line]
    cells = [cell.strip() for cell in appointment.split("│")]
    assert cells[4:-2] == ["0", "", "", ""] and cells[-2] == NO_HOLDOUT_BY_DESIGN
    [small] = [line for line in lines if "tiny" in line]
    assert small.split("│")[-2].strip() == "not estimable yet"  # not a miss of the truth


def test_tables_keep_one_line_per_row_in_a_log(capsys):
    """Piped into a log (make demo | tee), the truth table's rows are not wrapped at 80."""
    import pandas as pd

    from orchestration.cli.common import console
    from orchestration.cli.demo import truth_table

    results = pd.DataFrame([{
        "campaign_id": "replenishment_reminder", "comparison": "vs_holdout", "segment": "all",
        "metric": "conversion", "n_treatment": 1734, "n_control": 1760, "rel_lift": 0.175,
        "rel_ci_low": 0.075, "rel_ci_high": 0.275, "seq_rel_ci_low": 0.019,
        "seq_rel_ci_high": 0.331}])  # fmt: skip
    console.print(truth_table(results, {"replenishment_reminder": 0.25}))
    [row] = [line for line in capsys.readouterr().err.splitlines() if "1,734" in line]
    assert "replenishment_reminder" in row and "+7.5% to +27.5%" in row
