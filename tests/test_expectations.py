"""Great Expectations suites: pass on a sound batch, fail (and say why) on one built to fail."""

from datetime import date

import pandas as pd

from orchestration.ingest.expectations import suites, validate_frame


def _orders(**overrides) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "order_id": ["O1", "O1", "O2"],
            "order_line_no": [1, 2, 1],
            "unit_price": [10.0, 24.5, 99.0],
            "quantity": [1, 2, 1],
            "currency": ["USD", "USD", "USD"],
        }
    )
    for column, values in overrides.items():
        frame[column] = values
    return frame


def test_sound_batch_passes():
    result = validate_frame("orders", _orders())
    assert result.success and result.failed == []
    assert result.evaluated == len(suites()["orders"])


def test_batch_built_to_fail_fails_with_reasons():
    # each value passes row-level validation (non-negative numbers) but is implausible
    result = validate_frame(
        "orders", _orders(unit_price=[10.0, 50000.0, 99.0], order_line_no=[1, 1, 1])
    )
    assert not result.success
    failed = {(f["expectation"], str(f["column"])) for f in result.failed}
    assert ("expect_column_values_to_be_between", "unit_price") in failed
    assert ("expect_compound_columns_to_be_unique", "['order_id', 'order_line_no']") in failed
    price = next(f for f in result.failed if f["column"] == "unit_price")
    assert price["unexpected_count"] == 1 and price["examples"] == ["50000.0"]


def test_mostly_threshold_on_missing_first_names():
    customers = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(10)],
            "phone_e164": ["+14155550123"] * 10,
            "first_name": [None] * 5 + ["Ann"] * 5,
            "time_zone": ["Europe/Paris"] * 10,
        }
    )
    result = validate_frame("customers", customers)
    assert [f["column"] for f in result.failed] == ["first_name"]


def test_a_row_local_suite_in_chunks_counts_like_the_whole_batch(monkeypatch):
    """Events are checked a chunk at a time (bounded memory): failures in different chunks
    add up to what one pass over the whole batch finds."""
    import duckdb

    from orchestration.ingest import expectations

    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    con.execute("""CREATE TABLE raw.events AS SELECT 'C' || range AS customer_id,
        CASE WHEN range IN (10, 3000, 4999) THEN 'spied' ELSE 'explicit' END AS provenance,
        DATE '2025-01-02' AS partition_date FROM range(5000)""")
    monkeypatch.setattr(expectations, "CHUNK_ROWS", 2048)  # one vector per chunk: 3 chunks
    day = date(2025, 1, 2)
    chunked = expectations.validate_partitions(con, "events", day, day)
    whole = validate_frame("events", con.execute("SELECT * FROM raw.events").df())
    assert (chunked.success, chunked.rows) == (whole.success, whole.rows) == (False, 5000)
    [failure] = chunked.failed
    assert failure["unexpected_count"] == whole.failed[0]["unexpected_count"] == 3
    assert set(failure["examples"]) == {"spied"}
