"""docs/landing-contract.md is the contract as sources.yaml and the checks say it, and each
source's example there loads with every line accepted."""

from datetime import date, datetime

import duckdb
import pytest

from ingest.contract_doc import DOC, render
from ingest.load import load_range
from ingest.spec import sources


def test_the_document_matches_the_contract():
    assert DOC.read_text(encoding="utf-8") == render(), "run `make docs` and commit the result"


def test_every_reason_a_column_can_give_is_documented():
    text = DOC.read_text(encoding="utf-8")
    for reason in ("invalid phone number", "phone number cannot receive SMS",
                   "timestamp without time zone", "unknown order status",
                   "missing consent text", "duplicate key with conflicting content"):  # fmt: skip
        assert reason in text


@pytest.mark.parametrize("source", list(sources()))
def test_each_example_loads_with_every_line_accepted(tmp_path, source):
    example = sources()[source].example
    fmt = "jsonl" if example.lstrip().startswith("{") else "csv"
    (tmp_path / source).mkdir()
    (tmp_path / source / f"2025-03-03.{fmt}").write_text(example, encoding="utf-8")
    con = duckdb.connect()
    report = load_range(con, source, tmp_path, date(2025, 3, 3), date(2025, 3, 3),
                        datetime(2025, 3, 4))  # fmt: skip
    assert report.total("rows_read") == len(example.strip().splitlines()) - (fmt == "csv")
    assert report.reasons == {}
    assert report.total("rows_accepted") == report.total("rows_read")
