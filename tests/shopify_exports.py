"""Fixtures in the layout of Shopify's admin CSV exports (orders, customers, products), with
the quirks real exports have: order-level fields on an order's first row only, timestamps
with offsets, phones as people type them, ids with Excel's protecting apostrophe, a guest
checkout, a cancelled, a refunded and a partly refunded order, and text that looks like
markup. ``EXPECTED`` says what the warehouse must hold afterwards."""

from __future__ import annotations

import csv
from pathlib import Path


def _names(header: str) -> list[str]:
    return header.split(",")


ORDERS_HEADER = _names(
    "Name,Email,Financial Status,Paid at,Fulfillment Status,Fulfilled at,Accepts Marketing,"
    "Currency,Subtotal,Shipping,Taxes,Total,Discount Code,Discount Amount,Shipping Method,"
    "Created at,Lineitem quantity,Lineitem name,Lineitem price,Lineitem compare at price,"
    "Lineitem sku,Lineitem requires shipping,Lineitem taxable,Lineitem fulfillment status,"
    "Billing Name,Billing Street,Billing Address1,Billing Address2,Billing Company,"
    "Billing City,Billing Zip,Billing Province,Billing Country,Billing Phone,Shipping Name,"
    "Shipping Street,Shipping Address1,Shipping Address2,Shipping Company,Shipping City,"
    "Shipping Zip,Shipping Province,Shipping Country,Shipping Phone,Notes,Note Attributes,"
    "Cancelled at,Payment Method,Payment Reference,Refunded Amount,Vendor,"
    "Outstanding Balance,Employee,Location,Device ID,Id,Tags,Risk Level,Source,"
    "Lineitem discount,Tax 1 Name,Tax 1 Value,Tax 2 Name,Tax 2 Value,Tax 3 Name,Tax 3 Value,"
    "Tax 4 Name,Tax 4 Value,Tax 5 Name,Tax 5 Value,Phone,Receipt Number,Duties,"
    "Billing Province Name,Shipping Province Name,Payment ID,Payment Terms Name,"
    "Next Payment Due At,Payment References"
)
CUSTOMERS_HEADER = _names(
    "Customer ID,First Name,Last Name,Email,Accepts Email Marketing,Default Address Company,"
    "Default Address Address1,Default Address Address2,Default Address City,"
    "Default Address Province Code,Default Address Country Code,Default Address Zip,"
    "Default Address Phone,Phone,Accepts SMS Marketing,Total Spent,Total Orders,Note,"
    "Tax Exempt,Tags"
)
PRODUCTS_HEADER = _names(
    "Handle,Title,Body (HTML),Vendor,Product Category,Type,Tags,Published,Option1 Name,"
    "Option1 Value,Variant SKU,Variant Grams,Variant Inventory Tracker,Variant Inventory Qty,"
    "Variant Inventory Policy,Variant Fulfillment Service,Variant Price,"
    "Variant Compare At Price,Variant Requires Shipping,Variant Taxable,Status"
)


def _order(name, email, status, created, lines, cancelled="", refunded="", phone="",
           country="US", province="NY", source="web", order_id="") -> list[dict]:  # fmt: skip
    rows = []
    for i, (qty, title, price, sku, discount) in enumerate(lines):
        row = {"Name": name, "Lineitem quantity": qty, "Lineitem name": title,
               "Lineitem price": price, "Lineitem sku": sku, "Lineitem discount": discount,
               "Vendor": "Northwind"}  # fmt: skip
        if i == 0:  # the order's own fields: on its first row only
            row |= {"Email": email, "Financial Status": status, "Currency": "USD",
                    "Created at": created, "Cancelled at": cancelled,
                    "Refunded Amount": refunded, "Billing Name": "Ann Lee",
                    "Billing Province": province, "Billing Country": country,
                    "Billing Phone": phone, "Id": order_id, "Source": source}  # fmt: skip
        rows.append(row)
    return rows


ORDERS = [
    *_order("#1001", "ann@example.com", "paid", "2025-03-03 09:50:26 -0500",
            [("2", "Colombia Beans 1kg", "24.00", "COF-1KG", "0.00"),
             ("1", "Filter Papers", "4.50", "FLT-100", "0.50")], order_id="5501"),
    *_order("#1002", "bo@example.com", "refunded", "2025-03-04 18:00:00 +0100",
            [("1", "Green Tea 250g", "12.00", "SKU[/x]", "0.00")], order_id="5502",
            country="FR", province=""),
    *_order("#1003", "ann@example.com", "paid", "2025-03-05 10:00:00 -0500",
            [("1", "Colombia Beans 1kg", "24.00", "COF-1KG", "0.00")],
            cancelled="2025-03-05 12:30:00 -0500", order_id="5503", source="pos"),
    *_order("#1004", "guest@example.com", "partially_refunded", "2025-03-06 08:15:00 -0800",
            [("1", "Filter Papers", "4.50", "FLT-100", "0.00"),
             ("3", "Gift card", "10.00", "", "0.00")],
            refunded="4.50", phone="(415) 555-0123", province="CA", order_id="5504"),
]  # fmt: skip

CUSTOMERS = [
    {"Customer ID": "'7283727128767", "First Name": "Ann", "Last Name": "Lee",
     "Email": "Ann@Example.com", "Accepts Email Marketing": "yes",
     "Default Address Province Code": "NY", "Default Address Country Code": "US",
     "Phone": "+1 212-555-0100", "Accepts SMS Marketing": "yes"},
    {"Customer ID": "'7283727128768", "First Name": "Bo", "Email": "bo@example.com",
     "Accepts Email Marketing": "no", "Default Address Country Code": "FR",
     "Default Address Phone": "06 12 34 56 78", "Accepts SMS Marketing": "no"},
    {"Customer ID": "'7283727128769", "First Name": "[/b]Cy", "Email": "cy@example.com",
     "Accepts Email Marketing": "no", "Default Address Country Code": "US",
     "Accepts SMS Marketing": "no"},  # no phone, no orders: a customer all the same
    {"Customer ID": "'7283727128770", "First Name": "Di", "Email": "di@example.com",
     "Accepts Email Marketing": "no", "Default Address Country Code": "GB",
     "Phone": "020 7946 0958", "Accepts SMS Marketing": "yes"},  # a landline: quarantined
]  # fmt: skip

PRODUCTS = [
    {"Handle": "colombia", "Title": "Colombia Beans 1kg", "Type": "coffee",
     "Variant SKU": "COF-1KG", "Variant Price": "24.00", "Status": "active"},
    {"Handle": "filters", "Title": "Filter Papers", "Type": "coffee accessories",
     "Variant SKU": "FLT-100", "Variant Price": "4.50", "Status": "active"},
    {"Handle": "green-tea", "Title": "Green Tea 250g", "Type": "tea",
     "Variant SKU": "SKU[/x]", "Variant Price": "12.00", "Status": "active"},
]  # fmt: skip

SMS_TEXT = "Yes, text me offers from Northwind Goods. Msg & data rates may apply. STOP to end."

# what the warehouse holds after import + run (hand-written from the rows above)
EXPECTED = {
    "order_lines": {  # (order id, line no) -> status known at the end, net revenue
        ("5501", 1): ("completed", 48.00),
        ("5501", 2): ("completed", 4.00),
        ("5502", 1): ("refunded", 0.0),
        ("5503", 1): ("cancelled", 0.0),
        ("5504", 1): ("completed", 4.50),
        ("5504", 2): ("completed", 30.00),
    },
    "customers": {
        "7283727128767": "+12125550100",
        "7283727128768": "+33612345678",
        "7283727128769": None,
        "guest:guest@example.com": "+14155550123",
    },
    "quarantined": {  # source -> reasons
        "customers": ["phone number cannot receive SMS"],
        # Ann's email opt-in (no wording given for email), Di's SMS opt-in on a landline
        "consent": ["missing consent text", "phone number cannot receive SMS"],
    },
    "sms_marketing": {"7283727128767": "opted_in", "7283727128768": "opted_out"},
}


def write(path: Path, header: list[str], rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path
