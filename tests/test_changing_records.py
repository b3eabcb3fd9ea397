"""Records that change: a row with the key of an earlier one and a new ``updated_at`` is a new
version, kept beside the old one; without a new ``updated_at`` other content under the key
is still a conflict. Version picking as of a time is dbt's (unit tests in
``dbt_project/models/intermediate/_intermediate__unit_tests.yml``; the as-of equality test in
``tests/test_features.py`` runs on a world whose records change)."""

from datetime import date, datetime

import duckdb

from ingest.load import load_range

from .test_ingest import ORDERS_HEADER, write

AT = datetime(2025, 2, 1, 3, 0)
HEADER = ORDERS_HEADER + ",updated_at"
SOLD = "O1,1,C1,P1,1,10.00,0.00,USD,completed,web,2025-01-02T10:00:00Z,"
REFUNDED = "O1,1,C1,P1,1,10.00,0.00,USD,refunded,web,2025-01-02T10:00:00Z,2025-01-05T09:00:00Z"


def _lines(con) -> list[tuple]:
    return con.execute(
        "SELECT order_id, status, updated_at, partition_date FROM raw.orders "
        "ORDER BY 3 NULLS FIRST, 1"
    ).fetchall()


def _reasons(con) -> list[tuple]:
    return con.execute("SELECT file, reason, detail FROM raw.quarantine ORDER BY 1").fetchall()


def test_a_later_version_is_kept_beside_the_first(tmp_path):
    write(tmp_path, "orders/2025-01-02.csv", f"{HEADER}\n{SOLD}\n")
    write(tmp_path, "orders/2025-01-05.csv", f"{HEADER}\n{REFUNDED}\n")
    con = duckdb.connect()
    load_range(con, "orders", tmp_path, date(2025, 1, 2), date(2025, 1, 2), AT)
    load_range(con, "orders", tmp_path, date(2025, 1, 5), date(2025, 1, 5), AT)
    assert _lines(con) == [
        ("O1", "completed", None, date(2025, 1, 2)),
        ("O1", "refunded", datetime(2025, 1, 5, 9, 0), date(2025, 1, 5)),
    ]
    assert _reasons(con) == []


def test_versions_in_one_load_and_a_redelivered_version(tmp_path):
    write(tmp_path, "orders/2025-01-02.csv", f"{HEADER}\n{SOLD}\n")
    write(tmp_path, "orders/2025-01-05.csv", f"{HEADER}\n{REFUNDED}\n")
    write(tmp_path, "orders/2025-01-06.csv", f"{HEADER}\n{REFUNDED}\n")  # sent again
    con = duckdb.connect()
    report = load_range(con, "orders", tmp_path, date(2025, 1, 2), date(2025, 1, 6), AT)
    assert len(_lines(con)) == 2
    assert report.total("duplicates_dropped") == 1
    assert _reasons(con) == []


def test_other_content_under_the_same_version_is_a_conflict(tmp_path):
    other = REFUNDED.replace("10.00,0.00", "12.00,0.00")  # same updated_at, another price
    write(tmp_path, "orders/2025-01-05.csv", f"{HEADER}\n{REFUNDED}\n")
    write(tmp_path, "orders/2025-01-06.csv", f"{HEADER}\n{other}\n")
    write(tmp_path, "orders/2025-01-07.csv", f"{ORDERS_HEADER}\n{SOLD[:-1]}\n{SOLD[:-1]}\n")
    write(
        tmp_path, "orders/2025-01-08.csv",
        f"{ORDERS_HEADER}\n{SOLD[:-1].replace('10.00', '11.00')}\n",
    )  # fmt: skip
    con = duckdb.connect()
    report = load_range(con, "orders", tmp_path, date(2025, 1, 5), date(2025, 1, 8), AT)
    assert _reasons(con) == [
        ("orders/2025-01-06.csv", "duplicate key with conflicting content",
         "key O1/1/2025-01-05 09:00:00 first seen at orders/2025-01-05.csv:2"),
        ("orders/2025-01-08.csv", "duplicate key with conflicting content",
         "key O1/1 first seen at orders/2025-01-07.csv:2"),
    ]  # fmt: skip
    assert report.total("duplicates_dropped") == 1  # the 01-07 file holds its line twice
    assert all(f.reconciles for f in report.files)


def test_a_warehouse_from_before_versions_loads_them(tmp_path):
    """raw.orders as an older release made it (no updated_at, no phone_e164_raw): the next
    load adds the columns and keeps the rows it had."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    con.execute(f"""CREATE TABLE raw.orders AS SELECT 'O0' AS order_id, 1::BIGINT AS
        order_line_no, 'C1' AS customer_id, 'P1' AS product_id, 1::BIGINT AS quantity,
        10::DECIMAL(18,4) AS unit_price, 0::DECIMAL(18,4) AS discount_amount,
        'USD' AS currency, 'completed' AS status, 'web' AS channel,
        TIMESTAMP '2025-01-01 10:00' AS ordered_at, NULL::VARCHAR AS extra,
        DATE '2025-01-01' AS partition_date, 'orders/2025-01-01.csv' AS source_file,
        2::BIGINT AS source_line, TIMESTAMP '{AT}' AS loaded_at""")
    write(tmp_path, "orders/2025-01-02.csv", f"{HEADER}\n{SOLD}\n")
    write(tmp_path, "orders/2025-01-05.csv", f"{HEADER}\n{REFUNDED}\n")
    load_range(con, "orders", tmp_path, date(2025, 1, 2), date(2025, 1, 5), AT)
    assert [r[0] for r in _lines(con)] == ["O0", "O1", "O1"]
