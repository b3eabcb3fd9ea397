"""``retentext import csv --mapping``: a CSV saved by Excel in France (semicolons, decimal
commas, no-break spaces between thousands, CP1252 or a UTF-8 BOM, local day-first dates)
becomes landing files that ingest loads; what does not parse is quarantined, not lost."""

from datetime import date, datetime
from decimal import Decimal

import duckdb
import pytest

from ingest.load import load_range
from orchestration.cli import main

MAPPING = """\
source: orders
encoding: {encoding}
delimiter: ";"
decimal: ","
timestamp_format: "%d/%m/%Y %H:%M"
time_zone: Europe/Paris
columns:
  order_id: "N° commande"
  order_line_no: Ligne
  customer_id: Client
  product_id: Référence
  quantity: Qté
  unit_price: "Prix unitaire €"
  discount_amount: Remise
  currency: {{value: EUR}}
  status: {{value: completed}}
  ordered_at: Date
"""
HEADER = "N° commande;Ligne;Client;Référence;Qté;Prix unitaire €;Remise;Date;Commentaire"
ROWS = [
    "F-001;1;C1;CAFÉ-1;2;1\u00a0234,50;0,00;07/10/2025 09:50;ok",  # summer time: UTC+2
    'F-002;1;C2;THÉ-2;1;12,90;1,00;15/01/2025 18:05;"dit « merci »"',  # winter: UTC+1
    "F-003;1;C3;THÉ-2;1;douze;0,00;16/01/2025 10:00;",  # not a number
    "F-004;1;C4;THÉ-2;1;12,90;0,00;32/01/2025 10:00;",  # not a date
]


@pytest.fixture(params=["cp1252", "utf-8"])
def export(request, tmp_path):
    encoding = request.param
    body = "\r\n".join([HEADER, *ROWS]) + "\r\n"
    raw = body.encode(encoding) if encoding == "cp1252" else b"\xef\xbb\xbf" + body.encode()
    (tmp_path / "ventes.csv").write_bytes(raw)
    (tmp_path / "ventes.yaml").write_text(MAPPING.format(encoding=encoding), encoding="utf-8")
    return tmp_path


def test_a_french_excel_export_lands_and_loads(export, capsys):
    landing = export / "landing"
    code = main(["import", "csv", str(export / "ventes.csv"), "--mapping",
                 str(export / "ventes.yaml"), "--out", str(landing)])  # fmt: skip
    assert code == 0
    assert "Commentaire" in capsys.readouterr().err  # an unmapped column is named
    con = duckdb.connect()
    report = load_range(con, "orders", landing, date(2025, 1, 1), date(2025, 12, 31),
                        datetime(2025, 11, 1))  # fmt: skip
    assert report.total("rows_read") == len(ROWS)
    rows = con.execute(
        "SELECT order_id, product_id, unit_price, discount_amount, ordered_at, currency "
        "FROM raw.orders ORDER BY 1"
    ).fetchall()
    assert rows == [
        ("F-001", "CAFÉ-1", Decimal("1234.5"), Decimal("0"), datetime(2025, 10, 7, 7, 50), "EUR"),
        ("F-002", "THÉ-2", Decimal("12.9"), Decimal("1"), datetime(2025, 1, 15, 17, 5), "EUR"),
    ]
    reasons = con.execute(
        "SELECT raw_record LIKE 'F-003%', reason FROM raw.quarantine ORDER BY 1 DESC"
    ).fetchall()
    assert reasons == [(True, "non-numeric value"), (False, "unparseable timestamp")]


def test_a_mapping_that_does_not_fit_is_a_clear_error(export, capsys):
    mapping = export / "ventes.yaml"
    mapping.write_text(mapping.read_text().replace("Référence", "Reference"), encoding="utf-8")
    code = main(["import", "csv", str(export / "ventes.csv"), "--mapping", str(mapping),
                 "--out", str(export / "landing")])  # fmt: skip
    assert code == 2
    assert "no column 'Reference'" in capsys.readouterr().err
    mapping.write_text("source: orders\ncolumns: {order_id: x}\n", encoding="utf-8")
    assert main(["import", "csv", str(export / "ventes.csv"), "--mapping", str(mapping)]) == 2
    assert "requires order_line_no" in capsys.readouterr().err


def test_an_export_that_is_not_csv_is_a_clear_error(export, capsys):
    (export / "ventes.csv").write_bytes(b"a;b\n1;2;3;4\n")
    code = main(["import", "csv", str(export / "ventes.csv"), "--mapping",
                 str(export / "ventes.yaml"), "--out", str(export / "landing")])  # fmt: skip
    assert code == 2
    assert "cannot read the export as CSV" in capsys.readouterr().err
