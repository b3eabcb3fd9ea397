"""The landing folder as shops fill it: any letter case, compact dates, gzip and Parquet read;
links and paths out of the folder refused with a reason; every file not loaded reported."""

import gzip
import os
from datetime import date, datetime

import dagster as dg
import duckdb

from ingest.load import load_range
from ingest.pending import stray_files
from orchestration.defs.common import resources as resources_for
from warehouse.settings import Settings

from .test_ingest import GOOD, ORDERS_HEADER, write

AT = datetime(2025, 2, 1, 3, 0)
EVENT = (
    '{{"event_id":"{id}","customer_id":"C1","event_type":"app_open",'
    '"occurred_at":"2025-01-02T10:00:00Z","provenance":"tracked","channel":"app"}}'
)


def _order(order_id: str) -> str:
    return f"{ORDERS_HEADER}\n{GOOD.replace('O1', order_id)}\n"


def _orders(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT order_id FROM raw.orders").fetchall()}


def test_names_in_any_case_compact_dates_and_gzip_are_loaded(tmp_path):
    write(tmp_path, "orders/2025-01-02.CSV", _order("O1"))
    write(tmp_path, "orders/20250102.part2.csv", _order("O2"))
    write(tmp_path, "orders/2025-01-02.part3.csv.gz", gzip.compress(_order("O3").encode()))
    write(tmp_path, "orders/2025-01-02.part4.Csv.GZ", gzip.compress(_order("O4").encode()))
    write(tmp_path, "events/2025-01-02.jsonl.gz", gzip.compress(EVENT.format(id="E1").encode()))
    con = duckdb.connect()
    report = load_range(con, "orders", tmp_path, date(2025, 1, 2), date(2025, 1, 2), AT)
    load_range(con, "events", tmp_path, date(2025, 1, 2), date(2025, 1, 2), AT)
    assert _orders(con) == {"O1", "O2", "O3", "O4"}
    assert report.stray_files == []
    assert con.execute("SELECT event_id FROM raw.events").fetchall() == [("E1",)]


def test_a_broken_gzip_file_is_noted_and_the_others_load(tmp_path):
    write(tmp_path, "orders/2025-01-02.csv", _order("O1"))
    write(tmp_path, "orders/2025-01-02.b.csv.gz", gzip.compress(_order("O2").encode())[:30])
    con = duckdb.connect()
    report = load_range(con, "orders", tmp_path, date(2025, 1, 2), date(2025, 1, 2), AT)
    notes = {f.file: f.note for f in report.files}
    assert notes["orders/2025-01-02.b.csv.gz"].startswith("cannot read file")
    assert _orders(con) == {"O1"}


def test_parquet_is_read_with_its_types_and_row_numbers(tmp_path):
    (tmp_path / "events").mkdir()
    con = duckdb.connect()
    con.execute(f"""COPY (
        SELECT * FROM (VALUES
            ('E1', 'C1', 'app_open', TIMESTAMPTZ '2025-01-02 10:00:00+02', 'tracked', 'app',
             {{'utm': 'sms'}}),
            ('E2', 'C1', 'page_scroll', TIMESTAMPTZ '2025-01-02 11:00:00+00', 'tracked', 'app',
             {{'utm': 'x'}}),
            ('E3', 'C2', 'app_open', TIMESTAMPTZ '2025-01-02 12:00:00+00', 'tracked', 'app',
             {{'utm': 'y'}})
        ) AS t(event_id, customer_id, event_type, occurred_at, provenance, channel, properties)
    ) TO '{tmp_path / "events" / "2025-01-02.parquet"}' (FORMAT parquet)""")
    con.execute(f"""COPY (SELECT 'E4' AS event_id, 'C1' AS customer_id,
        'app_open' AS event_type, TIMESTAMP '2025-01-02 10:00:00' AS occurred_at,
        'tracked' AS provenance) TO '{tmp_path / "events" / "2025-01-02.naive.parquet"}'
        (FORMAT parquet)""")
    load_range(con, "events", tmp_path, date(2025, 1, 2), date(2025, 1, 2), AT)
    rows = con.execute(
        "SELECT event_id, occurred_at, properties FROM raw.events ORDER BY 1"
    ).fetchall()
    assert rows == [
        ("E1", datetime(2025, 1, 2, 8, 0), '{"utm":"sms"}'),
        ("E3", datetime(2025, 1, 2, 12, 0), '{"utm":"y"}'),
    ]
    quarantined = con.execute(
        "SELECT file, line_number, reason FROM raw.quarantine ORDER BY 1"
    ).fetchall()
    assert quarantined == [
        ("events/2025-01-02.naive.parquet", 1, "timestamp without time zone"),
        ("events/2025-01-02.parquet", 2, "unknown event type"),
    ]


def test_links_and_paths_out_of_the_landing_folder_are_refused_with_a_reason(tmp_path):
    landing, outside = tmp_path / "landing", tmp_path / "elsewhere"
    write(landing, "orders/2025-01-02.csv", _order("O1"))
    write(outside, "2025-01-03.csv", _order("O2"))
    write(outside, "events/2025-01-02.jsonl", EVENT.format(id="E1"))
    os.symlink(outside / "2025-01-03.csv", landing / "orders" / "2025-01-03.csv")
    os.symlink(landing / "orders" / "2025-01-02.csv", landing / "orders" / "2025-01-04.csv")
    os.symlink(outside / "events", landing / "events")
    write(landing, "orders/2025-13-01.csv", _order("O5"))
    write(landing, "orders/2025-01-02.parquet.gz", b"")
    write(landing, "orders/orders-export.csv", _order("O6"))
    con = duckdb.connect()
    load_range(con, "orders", landing, date(2025, 1, 1), date(2025, 1, 31), AT)
    assert _orders(con) == {"O1"}
    reasons = {s.name: s.reason for s in stray_files(landing)}
    assert reasons == {
        "orders/2025-01-03.csv": "symbolic link: landing files must be regular files in the "
        "landing folder",
        "orders/2025-01-04.csv": "symbolic link: landing files must be regular files in the "
        "landing folder",
        "events": "the source's folder is a link out of the landing folder",
        "orders/2025-13-01.csv": "2025-13-01 is not a calendar day",
        "orders/2025-01-02.parquet.gz": "a gzipped Parquet file: Parquet compresses itself, "
        "land it as .parquet",
        "orders/orders-export.csv": "name does not fit "
        "<YYYY-MM-DD or YYYYMMDD>[.<part>].<csv|jsonl|parquet>[.gz]",
    }


def test_stray_files_are_in_the_loads_dagster_metadata(tmp_path):
    from orchestration.defs.ingest import raw_assets

    settings = Settings.from_env(
        {"RETENTEXT_WAREHOUSE": str(tmp_path / "w.duckdb"),
         "RETENTEXT_LANDING": str(tmp_path / "landing"),
         "RETENTEXT_PARTITIONS_START": "2025-01-01"}
    )  # fmt: skip
    write(settings.landing, "orders/2025-01-02.csv", _order("O1"))
    write(settings.landing, "orders/Orders Jan.csv", _order("O2"))
    result = dg.materialize(raw_assets, partition_key="2025-01-02",
                            resources=resources_for(settings))  # fmt: skip
    [orders] = [
        e.materialization for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["raw", "orders"])
    ]  # fmt: skip
    strays = orders.metadata["stray_files"].value
    assert strays == [
        "orders/Orders Jan.csv (name does not fit "
        "<YYYY-MM-DD or YYYYMMDD>[.<part>].<csv|jsonl|parquet>[.gz])"
    ]
