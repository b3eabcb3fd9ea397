"""A shop's real exports end to end: ``retentext import shopify`` -> ``retentext run`` ->
the marts hold every order line, refund, cancellation and consent of the exports; every row
read is accepted or quarantined with a named reason; cohorts and reports work for a shop
that has never sent a message."""

import duckdb
import pytest

from orchestration.cli import main

from .shopify_exports import (
    CUSTOMERS,
    CUSTOMERS_HEADER,
    EXPECTED,
    ORDERS,
    ORDERS_HEADER,
    PRODUCTS,
    PRODUCTS_HEADER,
    SMS_TEXT,
    write,
)

EXPORTED_AT = "2025-03-10T12:00:00Z"
AS_OF = "2025-03-11T00:00:00Z"
# one worker builds the module's shared fixture once
pytestmark = pytest.mark.xdist_group("shopify")


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("shop")
    exports = {
        "--orders": write(root / "orders_export.csv", ORDERS_HEADER, ORDERS),
        "--customers": write(root / "customers_export.csv", CUSTOMERS_HEADER, CUSTOMERS),
        "--products": write(root / "products_export.csv", PRODUCTS_HEADER, PRODUCTS),
    }
    landing, warehouse = root / "landing", root / "w.duckdb"
    args = [a for flag, path in exports.items() for a in (flag, str(path))]
    imported = main(["import", "shopify", *args, "--out", str(landing),
                     "--exported-at", EXPORTED_AT, "--sms-consent-text", SMS_TEXT])  # fmt: skip
    ran = main(["run", "--landing", str(landing), "--as-of", AS_OF,
                "--warehouse", str(warehouse)])  # fmt: skip
    return imported, ran, root, warehouse


def test_the_import_and_the_run_succeed(shop):
    imported, ran, *_ = shop
    assert (imported, ran) == (0, 0)


def test_every_row_read_is_accepted_or_quarantined_with_a_named_reason(shop):
    *_, warehouse = shop
    con = duckdb.connect(str(warehouse), read_only=True)
    files = con.execute(
        "SELECT file, rows_read, rows_accepted, rows_quarantined, duplicates_dropped "
        "FROM raw.load_files"
    ).fetchall()
    assert files and all(read == a + q + d for _, read, a, q, d in files)
    assert sum(r[1] for r in files if r[0].startswith("orders/")) == len(ORDERS) + 2  # versions
    reasons = {}
    for source, reason in con.execute(
        "SELECT source, reason FROM raw.quarantine ORDER BY 1, 2"
    ).fetchall():
        reasons.setdefault(source, []).append(reason)
    assert reasons == EXPECTED["quarantined"]


def test_the_marts_hold_every_line_refund_and_cancellation(shop):
    *_, warehouse = shop
    con = duckdb.connect(str(warehouse), read_only=True)
    lines = {
        (order_id, line_no): (status, float(revenue))
        for order_id, line_no, status, revenue in con.execute(
            "SELECT order_id, order_line_no, status, net_revenue FROM marts.fct_order_lines"
        ).fetchall()
    }
    assert lines == EXPECTED["order_lines"]
    categories = dict(con.execute("SELECT product_id, category FROM marts.dim_products").fetchall())
    assert categories["SKU[/x]"] == "tea" and categories["name:Gift card"] == "uncategorised"


def test_customers_phones_and_sms_consent(shop):
    *_, warehouse = shop
    con = duckdb.connect(str(warehouse), read_only=True)
    phones = dict(con.execute("SELECT customer_id, phone_e164 FROM marts.dim_customers").fetchall())
    assert phones == EXPECTED["customers"]
    sms = dict(
        con.execute(
            "SELECT customer_id, status FROM marts.customer_consent "
            "WHERE channel = 'sms' AND category = 'marketing' AND status <> 'never'"
        ).fetchall()
    )
    assert sms == EXPECTED["sms_marketing"]


def test_experiments_and_reports_for_a_shop_that_never_sent(shop, capsys):
    *_, root, warehouse = shop
    assert main(["experiments", "--as-of", AS_OF, "--warehouse", str(warehouse)]) == 0
    assert main(["report", "--as-of", AS_OF, "--warehouse", str(warehouse),
                 "--out", str(root / "reports")]) == 0  # fmt: skip
    con = duckdb.connect(str(warehouse), read_only=True)
    cohorts = con.execute("SELECT count(*) FROM experiments.ltv_cohorts").fetchone()[0]
    assert cohorts > 0
    page = (root / "reports" / "cohorts.html").read_text()
    assert "2025-03" in page
    assert f"0 units, 0 result rows, {cohorts:,} cohort rows" in capsys.readouterr().out
