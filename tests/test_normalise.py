"""Real exports on the way in: phone numbers in the formats people write them, timestamps in
the formats shops export them. Expected values are written by hand, not computed."""

from datetime import date, datetime

import duckdb
import pytest

from ingest.load import load_range

HEADER = "customer_id,first_name,phone_e164,country,region,time_zone,language,created_at"
AT = datetime(2025, 2, 1, 3, 0)

# (phone as written, the row's country, E.164 stored, or the quarantine reason)
PHONES = [
    ("+1 212 555 0100", "US", "+12125550100"),
    ("(212) 555-0100", "US", "+12125550100"),
    ("212.555.0100", "US", "+12125550100"),
    ("1-212-555-0100", "US", "+12125550100"),
    ("0612345678", "FR", "+33612345678"),
    ("06 12 34 56 78", "FR", "+33612345678"),
    ("0044 7712 345678", "FR", "+447712345678"),  # France's international prefix
    ("011 44 7712 345678", "US", "+447712345678"),  # the NANP's
    ("+44 (0) 7712 345678", "GB", "+447712345678"),
    ("07712 345678", "GB", "+447712345678"),
    ("0151 12345678", "DE", "+4915112345678"),
    ("+33612345678", "DE", "+33612345678"),  # a French mobile of a customer in Germany
    ("01 42 68 53 00", "FR", "phone number cannot receive SMS"),  # a Paris landline
    ("+44 20 7946 0958", "GB", "phone number cannot receive SMS"),  # a London landline
    ("0612", "FR", "invalid phone number"),
    ("06 12 34 56 78 90 12", "FR", "invalid phone number"),
    ("not a number", "US", "invalid phone number"),
    ("+12125550100 ext. 7", "US", "invalid phone number"),  # no extension reaches a handset
]


def _load_customers(tmp_path, rows: list[str]) -> duckdb.DuckDBPyConnection:
    folder = tmp_path / "customers"
    folder.mkdir(parents=True)
    (folder / "2025-01-02.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    con = duckdb.connect()
    load_range(con, "customers", tmp_path, date(2025, 1, 2), date(2025, 1, 2), AT)
    return con


def _customer(i: int, phone: str, country: str, created: str = "2025-01-02T10:00:00Z") -> str:
    quoted = f'"{phone}"' if "," in phone else phone
    return f"C{i},Ann,{quoted},{country},,,en,{created}"


def test_phones_are_stored_in_e164_with_the_value_as_written_kept(tmp_path):
    con = _load_customers(tmp_path, [_customer(i, p, c) for i, (p, c, _) in enumerate(PHONES)])
    stored = {
        int(cid[1:]): (e164, raw)
        for cid, e164, raw in con.execute(
            "SELECT customer_id, phone_e164, phone_e164_raw FROM raw.customers"
        ).fetchall()
    }
    quarantined = {
        line - 2: reason
        for line, reason in con.execute("SELECT line_number, reason FROM raw.quarantine").fetchall()
    }
    for i, (phone, country, expected) in enumerate(PHONES):
        if expected.startswith("+"):
            assert stored.get(i) == (expected, phone), (phone, country, quarantined.get(i))
        else:
            assert quarantined.get(i) == expected, (phone, country, stored.get(i))
    assert len(stored) + len(quarantined) == len(PHONES)


def test_a_landline_is_named_as_such_in_the_detail(tmp_path):
    con = _load_customers(tmp_path, [_customer(1, "01 42 68 53 00", "FR")])
    detail = con.execute("SELECT detail FROM raw.quarantine").fetchone()[0]
    assert detail == "phone_e164=01 42 68 53 00 is +33142685300, not a mobile number"


def test_a_customer_without_a_phone_is_accepted(tmp_path):
    con = _load_customers(tmp_path, [_customer(1, "", "US")])
    assert con.execute("SELECT count(*) FROM raw.quarantine").fetchone()[0] == 0
    assert con.execute("SELECT phone_e164 FROM raw.customers").fetchall() == [(None,)]


@pytest.mark.parametrize(
    ("written", "utc"),
    [
        ("2025-01-02 09:50:26 +0200", datetime(2025, 1, 2, 7, 50, 26)),  # Shopify's export
        ("2025-01-02 09:50:26 -0500", datetime(2025, 1, 2, 14, 50, 26)),
        ("2025-01-02 09:50:26 +02:00", datetime(2025, 1, 2, 7, 50, 26)),
        ("2025-01-02T09:50:26+02:00", datetime(2025, 1, 2, 7, 50, 26)),
        ("2025-01-02T09:50:26.250Z", datetime(2025, 1, 2, 9, 50, 26, 250000)),
        ("2025-01-02 09:50:26 UTC", datetime(2025, 1, 2, 9, 50, 26)),
    ],
)
def test_export_timestamps_with_offsets_are_read_as_utc(tmp_path, written, utc):
    con = _load_customers(tmp_path, [_customer(1, "+12125550100", "US", written)])
    assert con.execute("SELECT created_at FROM raw.customers").fetchall() == [(utc,)]


def test_a_timestamp_without_zone_is_still_quarantined(tmp_path):
    con = _load_customers(tmp_path, [_customer(1, "+12125550100", "US", "2025-01-02 09:50:26")])
    assert con.execute("SELECT reason FROM raw.quarantine").fetchall() == [
        ("timestamp without time zone",)
    ]
