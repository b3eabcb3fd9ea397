"""Shopify's admin CSV exports as landing files (``retentext import shopify``).

What the exports look like, and what is made of them:
- Orders export: one row per line item; order-level fields (Email, Financial Status,
  Currency, Created at, Cancelled at, Refunded Amount, the addresses, Phone) are on the
  first row of an order only and are carried down to its other lines. Timestamps carry
  an offset (``2025-10-07 09:50:26 +0200``) and become UTC.
  - A cancelled order (``Cancelled at``) lands as placed, then as a later version of each
    line, cancelled at that moment.
  - A refunded order (Financial Status ``refunded``) lands as sold, then refunded at the
    export's moment (the export does not say when the refund happened).
  - A partly refunded order cannot be split over its lines: it stays sold, and is counted
    in the summary's notes.
- Customers export (the current layout with ``Customer ID`` and ``Default Address ...``
  columns, or the older one with ``Country Code``): the id may start with the apostrophe
  Excel protection adds; phones in any format (ingest normalises them). A customer is
  created at their first order, or at the export's moment when they have none. Guest
  checkouts (an email or phone on the order that matches no customer) become customers too.
- ``Accepts SMS Marketing`` / ``Accepts Email Marketing``: yes is an opt-in, no an opt-out,
  as of the export. The exports do not hold the wording the customer agreed to: pass it
  (``sms_consent_text``), or the opt-ins are quarantined as "missing consent text", as
  any opt-in without proof is. Where the export has ``SMS Marketing Consent Collected
  From`` / ``... Updated At`` columns, they are kept (``collected_from``, in ``extra``) and
  used as the moment.
- Products export (optional): ``Variant SKU``, ``Title``, ``Type``/``Product Category``,
  ``Variant Price``. Without it, products come from the line items (category
  ``uncategorised``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb

from ingest.importers.exports import read_export
from ingest.importers.landing_writer import ImportSummary, write_landing
from ingest.phones import PARSE_FUNCTION, register_phone_parser
from ingest.validate import ident, lit

TAG = "shopify"
EXPORT_TS = "%Y-%m-%d %H:%M:%S %z"


def _read(con: duckdb.DuckDBPyConnection, name: str, path: Path) -> set[str]:
    """An export as table ``name``; a file that is not CSV is a ValueError naming it."""
    try:
        return read_export(con, name, Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


def _col(present: set[str], *names: str) -> str:
    """The first of ``names`` the export has, quoted; NULL when it has none."""
    for n in names:
        if n in present:
            return ident(n)
    return "NULL"


def _utc(expr: str) -> str:
    """An export timestamp as ISO UTC text; the value as it was when it does not parse
    (ingest then quarantines it with the reason)."""
    parsed = f"try_strptime({expr}, {lit(EXPORT_TS)})"
    return (
        f"CASE WHEN {parsed} IS NULL THEN {expr} "
        f"ELSE strftime(timezone('UTC', {parsed}), '%Y-%m-%dT%H:%M:%SZ') END"
    )


def _day(iso_utc: str) -> str:
    return f"try_cast(left({iso_utc}, 10) AS DATE)"


def import_shopify(
    orders: Path,
    customers: Path | None,
    out: Path,
    exported_at: datetime,
    products: Path | None = None,
    sms_consent_text: str | None = None,
    email_consent_text: str | None = None,
) -> ImportSummary:
    """Landing files under ``out`` from Shopify exports taken at ``exported_at`` (UTC)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    register_phone_parser(con)
    summary = ImportSummary()
    exported = lit(exported_at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    _order_lines(con, _read(con, "so", orders))
    _customers(con, _read(con, "sc", customers) if customers else None, exported)
    _products(con, _read(con, "sp", products) if products else None, exported)
    for source, query in (
        ("customers", _customers_query()),
        ("products", "SELECT * FROM products"),
        ("orders", _orders_query(exported)),
        (
            "consent",
            _consent_query(customers is not None, exported, sms_consent_text, email_consent_text),
        ),
    ):
        summary.files.update(write_landing(con, query, source, out, TAG))
    summary.notes += _notes(con, customers is not None, sms_consent_text, email_consent_text)
    con.close()
    return summary


def _order_lines(con, present: set[str]) -> None:
    """One row per line item, order-level fields carried down from the order's first row."""
    first_row_only = {
        "email": _col(present, "Email"),
        "financial_status": _col(present, "Financial Status"),
        "currency": _col(present, "Currency"),
        "created_at": _col(present, "Created at"),
        "cancelled_at": _col(present, "Cancelled at"),
        "refunded_amount": _col(present, "Refunded Amount"),
        "phone": f"coalesce({_col(present, 'Phone')}, {_col(present, 'Billing Phone')}, "
        f"{_col(present, 'Shipping Phone')})",
        "country": f"coalesce({_col(present, 'Billing Country')}, "
        f"{_col(present, 'Shipping Country')})",
        "region": f"coalesce({_col(present, 'Billing Province')}, "
        f"{_col(present, 'Shipping Province')})",
        "first_name": f"split_part({_col(present, 'Billing Name')}, ' ', 1)",
        "source": _col(present, "Source"),
        "shopify_id": _col(present, "Id"),
    }
    carried = ",\n".join(
        f"last_value({expr} IGNORE NULLS) OVER (PARTITION BY {_col(present, 'Name')} "
        f"ORDER BY _row ROWS UNBOUNDED PRECEDING) AS {name}"
        for name, expr in first_row_only.items()
    )
    con.execute(f"""CREATE OR REPLACE TEMP TABLE lines AS
        SELECT {_col(present, "Name")} AS order_name, _row,
            row_number() OVER (PARTITION BY {_col(present, "Name")} ORDER BY _row)
                AS order_line_no,
            {_col(present, "Lineitem quantity")} AS quantity,
            {_col(present, "Lineitem price")} AS unit_price,
            {_col(present, "Lineitem discount")} AS discount_amount,
            {_col(present, "Lineitem name")} AS product_name,
            coalesce({_col(present, "Lineitem sku")}, 'name:' || {_col(present, "Lineitem name")})
                AS product_id,
            {_col(present, "Vendor")} AS vendor,
            {carried}
        FROM so WHERE {_col(present, "Name")} IS NOT NULL""")
    con.execute("ALTER TABLE lines ADD COLUMN order_ref VARCHAR")
    con.execute("UPDATE lines SET order_ref = coalesce(shopify_id, order_name)")


def _customers(con, present: set[str] | None, exported: str) -> None:
    """Customers of the export and guests of the orders, with their first order's time."""
    if present is None:
        con.execute("""CREATE OR REPLACE TEMP TABLE sc_norm AS SELECT NULL::VARCHAR AS
            customer_id, NULL::VARCHAR AS email, NULL::VARCHAR AS first_name,
            NULL::VARCHAR AS phone, NULL::VARCHAR AS country, NULL::VARCHAR AS region,
            NULL::VARCHAR AS accepts_sms, NULL::VARCHAR AS accepts_email,
            NULL::VARCHAR AS sms_collected_from, NULL::VARCHAR AS sms_updated_at,
            0 AS _row WHERE false""")
    else:
        cid = _col(present, "Customer ID", "ID", "Id")
        con.execute(f"""CREATE OR REPLACE TEMP TABLE sc_norm AS SELECT
            ltrim({cid}, '''') AS customer_id, lower(trim({_col(present, "Email")})) AS email,
            {_col(present, "First Name")} AS first_name,
            coalesce({_col(present, "Phone")}, {_col(present, "Default Address Phone")})
                AS phone,
            coalesce({_col(present, "Default Address Country Code", "Country Code")},
                     {_col(present, "Country")}) AS country,
            {_col(present, "Default Address Province Code", "Province Code")} AS region,
            lower({_col(present, "Accepts SMS Marketing")}) AS accepts_sms,
            lower({_col(present, "Accepts Email Marketing", "Accepts Marketing")})
                AS accepts_email,
            {_col(present, "SMS Marketing Consent Collected From")} AS sms_collected_from,
            {_col(present, "SMS Marketing Consent Updated At")} AS sms_updated_at,
            _row
            FROM sc""")
    # each order line's customer: by email, else by phone, else a guest of its own
    con.execute("""CREATE OR REPLACE TEMP TABLE line_customers AS
        SELECT l._row, coalesce(
            (SELECT min(c.customer_id) FROM sc_norm c WHERE c.email = lower(trim(l.email))),
            'guest:' || coalesce(lower(trim(l.email)), l.phone, l.order_name)) AS customer_id
        FROM lines l""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE first_orders AS
        SELECT lc.customer_id, min({_utc("l.created_at")}) AS first_order_at
        FROM lines l JOIN line_customers lc USING (_row) GROUP BY 1""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE customers AS
        SELECT c.customer_id, c.first_name, c.phone AS phone_e164, c.country, c.region,
               coalesce(f.first_order_at, {exported}) AS created_at, c.accepts_sms,
               c.accepts_email, c.sms_collected_from, c.sms_updated_at, c.email
        FROM sc_norm c LEFT JOIN first_orders f USING (customer_id)
        UNION ALL BY NAME
        SELECT lc.customer_id, any_value(l.first_name) AS first_name,
               any_value(l.phone) AS phone_e164, any_value(l.country) AS country,
               any_value(l.region) AS region, min(f.first_order_at) AS created_at
        FROM lines l JOIN line_customers lc USING (_row) JOIN first_orders f USING (customer_id)
        WHERE lc.customer_id LIKE 'guest:%' GROUP BY lc.customer_id""")


def _products(con, present: set[str] | None, exported: str) -> None:
    """The catalogue: the products export where given (one row per variant SKU), and every
    product a line names that it lacks."""
    if present is not None:
        con.execute(f"""CREATE OR REPLACE TEMP TABLE catalog AS
            SELECT {_col(present, "Variant SKU")} AS product_id,
                   any_value({_col(present, "Title")}) AS product_name,
                   any_value(coalesce({_col(present, "Type")},
                                      {_col(present, "Product Category")})) AS category,
                   any_value({_col(present, "Variant Price")}) AS price
            FROM sp WHERE {_col(present, "Variant SKU")} IS NOT NULL GROUP BY 1""")
    else:
        con.execute("""CREATE OR REPLACE TEMP TABLE catalog AS SELECT NULL::VARCHAR AS
            product_id, NULL::VARCHAR AS product_name, NULL::VARCHAR AS category,
            NULL::VARCHAR AS price WHERE false""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE products AS
        WITH sold AS (
            SELECT product_id, arg_min(product_name, _row) AS product_name,
                   arg_min(unit_price, _row) AS price, arg_min(currency, _row) AS currency,
                   min({_utc("created_at")}) AS launched_at
            FROM lines GROUP BY 1)
        SELECT coalesce(c.product_id, s.product_id) AS product_id,
               coalesce(c.product_name, s.product_name) AS name,
               coalesce(c.category, 'uncategorised') AS category,
               coalesce(c.price, s.price) AS price,
               coalesce(s.currency, (SELECT any_value(currency) FROM lines)) AS currency,
               coalesce(s.launched_at, {exported}) AS launched_at,
               {_day(f"coalesce(s.launched_at, {exported})")} AS day
        FROM catalog c FULL JOIN sold s ON c.product_id = s.product_id""")


def _customers_query() -> str:
    return f"""SELECT customer_id, first_name, phone_e164, country, region, created_at,
        {_day("created_at")} AS day FROM customers"""


def _orders_query(exported: str) -> str:
    """The lines as placed, then a version for each cancellation or refund."""
    placed = _utc("l.created_at")
    cancelled = _utc("l.cancelled_at")
    channel = """CASE lower(l.source) WHEN 'pos' THEN 'store' WHEN 'iphone' THEN 'app'
        WHEN 'android' THEN 'app' ELSE 'web' END"""
    line = f"""l.order_ref AS order_id, l.order_line_no::VARCHAR AS order_line_no,
        lc.customer_id, l.product_id, l.quantity, l.unit_price, l.discount_amount,
        l.currency, {channel} AS channel, {placed} AS ordered_at"""
    return f"""
    WITH l AS (SELECT * FROM lines),
    changes AS (
        SELECT l._row, 'cancelled' AS status, {cancelled} AS changed_at FROM l
        WHERE l.cancelled_at IS NOT NULL
        UNION ALL
        SELECT l._row, 'refunded', {exported} FROM l
        WHERE lower(l.financial_status) = 'refunded' AND l.cancelled_at IS NULL)
    SELECT {line}, 'completed' AS status, NULL AS updated_at, {_day(placed)} AS day
    FROM l JOIN line_customers lc USING (_row)
    UNION ALL
    SELECT {line}, c.status, c.changed_at, {_day("c.changed_at")}
    FROM l JOIN line_customers lc USING (_row) JOIN changes c USING (_row)"""


def _consent_query(
    have_customers: bool, exported: str, sms_text: str | None, email_text: str | None
) -> str:
    """Opt-ins and opt-outs as of the export (or the SMS consent's own update time, where the
    export has it): never earlier than known, so no text goes out before a consent."""
    if not have_customers:
        return "SELECT NULL AS consent_event_id, NULL::DATE AS day WHERE false"
    at = f"coalesce({_utc('sms_updated_at')}, {exported})"
    parts = []
    for channel, column, text in (("sms", "accepts_sms", sms_text), ("email", "accepts_email",
                                                                      email_text)):  # fmt: skip
        moment = at if channel == "sms" else exported
        proof = "sms_collected_from" if channel == "sms" else "NULL"
        action = f"CASE WHEN {column} IN ('yes', 'true', '1') THEN 'opt_in' ELSE 'opt_out' END"
        parts.append(f"""
        SELECT '{TAG}-{channel}-' || customer_id || '-' || left({moment}, 10) AS consent_event_id,
            customer_id,
            -- the consent log has no country to read a national number with: E.164 here
            CASE WHEN '{channel}' = 'sms' THEN coalesce({PARSE_FUNCTION}(phone_e164, country),
                                                         phone_e164) END AS phone_e164,
            '{channel}' AS channel, 'marketing' AS category, {action} AS action,
            'import' AS source,
            CASE WHEN {action} = 'opt_in' THEN {lit(text) if text else "NULL"} END
                AS consent_text,
            {moment} AS occurred_at, {proof} AS collected_from, {_day(moment)} AS day
        FROM customers WHERE {column} IS NOT NULL AND customer_id NOT LIKE 'guest:%'
            {"AND phone_e164 IS NOT NULL" if channel == "sms" else ""}""")
    return " UNION ALL ".join(parts)


def _notes(con, have_customers: bool, sms_text: str | None, email_text: str | None) -> list:
    notes = []
    partly = con.execute(
        "SELECT count(DISTINCT order_name) FROM lines "
        "WHERE lower(financial_status) = 'partially_refunded'"
    ).fetchall()[0][0]
    if partly:
        notes.append(
            f"{partly} partly refunded order(s) kept as sold: the export does not say "
            "which lines the refunded amount belongs to"
        )
    guests = con.execute(
        "SELECT count(*) FROM customers WHERE customer_id LIKE 'guest:%'"
    ).fetchall()[0][0]
    if guests:
        notes.append(f"{guests} guest checkout(s) imported as customers (guest:<email>)")
    if not have_customers:
        return notes
    for channel, column, text in (("SMS", "accepts_sms", sms_text), ("email", "accepts_email",
                                                                     email_text)):  # fmt: skip
        opt_ins = con.execute(
            f"SELECT count(*) FROM customers WHERE {column} IN ('yes', 'true', '1')"
        ).fetchall()[0][0]
        if opt_ins and not text:
            flag = "--sms-consent-text" if channel == "SMS" else "--email-consent-text"
            notes.append(
                f"{opt_ins} {channel} opt-in(s) carry no consent text: ingest quarantines them "
                f"as 'missing consent text'. Pass {flag} with the wording the customers saw."
            )
    return notes
