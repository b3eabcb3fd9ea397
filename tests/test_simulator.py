"""The simulated shop: determinism and the properties the product relies on."""

import hashlib
import json
from datetime import date
from pathlib import Path

import duckdb
import phonenumbers
import pytest

from simulator.writer import simulate

from .conftest import WORLD


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_byte_identical_files(tmp_path, clean_world):
    again = tmp_path / "again"
    simulate(again, **WORLD)
    assert _digest(again) == _digest(clean_world)


def test_other_seed_gives_other_files(tmp_path, clean_world):
    other = tmp_path / "other"
    simulate(other, **{**WORLD, "seed": WORLD["seed"] + 1})
    assert _digest(other) != _digest(clean_world)


def test_layout_one_file_per_source_and_day(clean_world):
    for source, ext in [
        ("customers", "csv"),
        ("products", "csv"),
        ("orders", "csv"),
        ("events", "jsonl"),
        ("consent", "csv"),
    ]:
        names = [p.name for p in (clean_world / source).iterdir()]
        assert names, source
        assert all(n.endswith("." + ext) for n in names)
        assert all(date.fromisoformat(n.split(".")[0]) for n in names)
    assert len(list((clean_world / "orders").iterdir())) == WORLD["days"]


@pytest.fixture(scope="module")
def con(clean_world):
    c = duckdb.connect()
    c.execute("SET TimeZone='UTC'")
    for s in ["customers", "products", "orders", "consent"]:
        c.execute(
            f"CREATE VIEW {s} AS SELECT * FROM read_csv('{clean_world}/{s}/*.csv', "
            "header=true, all_varchar=true)"
        )
    c.execute(
        f"CREATE VIEW events AS SELECT * FROM read_json('{clean_world}/events/*.jsonl', "
        "format='newline_delimited')"
    )
    return c


def test_phone_numbers_are_valid_mobiles_of_the_customer_country(con):
    rows = con.execute("SELECT phone_e164, country FROM customers").fetchall()
    assert len(rows) == WORLD["customers"]
    for phone, country in rows:
        parsed = phonenumbers.parse(phone)
        assert phonenumbers.is_valid_number(parsed), phone
        assert phonenumbers.region_code_for_number(parsed) == country, (phone, country)
        assert phonenumbers.number_type(parsed) in (
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        )


def test_geography_languages_and_names(con):
    regions = {
        r[0]
        for r in con.execute(
            "SELECT country || '/' || coalesce(region, '') FROM customers"
        ).fetchall()
    }
    for needed in ["US/FL", "US/WA", "CA/QC", "GB/", "FR/", "DE/"]:
        assert needed in regions
    quebec_fr = con.execute(
        "SELECT avg((language = 'fr')::INT) FROM customers WHERE region = 'QC'"
    ).fetchone()[0]
    assert quebec_fr > 0.6
    names = [r[0] for r in con.execute("SELECT first_name FROM customers").fetchall()]
    missing = sum(n is None for n in names) / len(names)
    assert 0.02 < missing < 0.10
    gsm = set(
        "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNO"
        "PQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    )
    assert any(n and not set(n) <= gsm for n in names), "some names need UCS-2"
    assert any(n and any(ord(ch) > 0xFFFF for ch in n) for n in names), "an emoji name"


def test_catalog_has_cycles_and_durables(con):
    cycles = {
        r[0] for r in con.execute("SELECT DISTINCT replenishment_days FROM products").fetchall()
    }
    assert {"30", "45", "60", "90"} <= cycles
    assert None in cycles  # durables


def test_replenishers_reorder_around_their_products_cycle(tmp_path):
    out = tmp_path / "long"
    simulate(out, customers=3000, start=date(2025, 1, 1), days=365, seed=3)
    c = duckdb.connect()
    gaps = c.execute(f"""
        WITH lines AS (SELECT o.customer_id, o.product_id, o.ordered_at::TIMESTAMP AS t,
                              p.replenishment_days::INT AS cycle
                       FROM read_csv('{out}/orders/*.csv', all_varchar=true) o
                       JOIN read_csv('{out}/products/*.csv', all_varchar=true) p USING (product_id)
                       WHERE o.order_line_no = '1' AND p.replenishment_days IS NOT NULL),
        g AS (SELECT cycle, date_diff('day', lag(t) OVER (PARTITION BY customer_id, product_id
                                                           ORDER BY t), t) AS gap FROM lines)
        SELECT cycle, median(gap), count(*) FROM g WHERE gap IS NOT NULL GROUP BY cycle
    """).fetchall()
    by_cycle = {cycle: (med, n) for cycle, med, n in gaps}
    for cycle in (30, 45, 60):
        med, n = by_cycle[cycle]
        assert n > 50
        assert 0.7 * cycle <= med <= 1.4 * cycle, (cycle, med)


def test_orders_have_cancelled_and_refunded_lines(con):
    statuses = dict(con.execute("SELECT status, count(*) FROM orders GROUP BY 1").fetchall())
    assert set(statuses) == {"completed", "cancelled", "refunded"}
    assert statuses["completed"] > 10 * (statuses["cancelled"] + statuses["refunded"])


def test_events_types_provenance_and_appointments(con):
    rows = dict(
        con.execute(
            "SELECT event_type, list_distinct(list(provenance)) FROM events GROUP BY 1"
        ).fetchall()
    )
    assert set(rows) == {
        "product_view",
        "add_to_cart",
        "checkout_started",
        "app_open",
        "sms_click",
        "appointment_booked",
    }
    assert rows["appointment_booked"] == ["explicit"]
    assert rows["product_view"] == ["tracked"]
    props = con.execute(
        "SELECT properties FROM events WHERE event_type = 'appointment_booked' LIMIT 1"
    ).fetchone()[0]
    props = props if isinstance(props, dict) else json.loads(props)
    assert {"appointment_at", "store_id", "store_name", "checklist"} <= set(props)
    assert len(props["checklist"]) >= 2


def test_consent_sources_texts_and_opt_outs(con):
    sources = {r[0] for r in con.execute("SELECT DISTINCT source FROM consent").fetchall()}
    assert {"web_form", "checkout", "keyword"} <= sources
    cats = {r[0] for r in con.execute("SELECT DISTINCT category FROM consent").fetchall()}
    assert cats == {"marketing", "transactional"}
    assert (
        con.execute(
            "SELECT count(*) FROM consent WHERE action = 'opt_in' AND consent_text IS NULL"
        ).fetchone()[0]
        == 0
    )
    assert (
        con.execute(
            "SELECT count(*) FROM consent WHERE action = 'opt_out' "
            "AND source = 'keyword' AND keyword IS NOT NULL"
        ).fetchone()[0]
        > 0
    )


def test_bad_rows_injects_every_kind(bad_world):
    _, summary = bad_world
    for source, info in summary.items():
        assert info["defects"], source
        assert all(n >= 1 for n in info["defects"].values()), (source, info["defects"])


def test_rejects_nonsense_arguments(tmp_path):
    with pytest.raises(ValueError, match="customers"):
        simulate(tmp_path, customers=0, start=date(2025, 1, 1), days=3, seed=1)
    with pytest.raises(ValueError, match="bad-rows"):
        simulate(tmp_path, customers=10, start=date(2025, 1, 1), days=3, seed=1, bad_rows=2)


def test_orders_and_events_belong_to_existing_customers_after_signup(con):
    for table, ts in [("orders", "ordered_at"), ("events", "occurred_at")]:
        orphans, early = con.execute(f"""
            SELECT count(*) FILTER (WHERE c.customer_id IS NULL),
                   count(*) FILTER (WHERE x.{ts}::TIMESTAMP < c.created_at::TIMESTAMP)
            FROM {table} x LEFT JOIN customers c USING (customer_id)""").fetchone()
        assert (orphans, early) == (0, 0), table


def test_a_launch_has_earlier_buyers_and_big_spenders_reach_the_upper_tiers(tmp_path):
    """What the demo's campaigns need from the world: the launch category sold before its
    launch (so a launch has customers to tell), and a year's spend that reaches gold
    (1,500 in the loyalty seed) for more than a handful of customers."""
    out = tmp_path / "year"
    simulate(out, customers=5000, start=date(2025, 1, 1), days=365, seed=3)
    c = duckdb.connect()
    products = c.execute(f"""SELECT product_id, launched_at::TIMESTAMP FROM
        read_csv('{out}/products/*.csv', all_varchar=true) WHERE category = 'fragrance'""")
    launched = dict(products.fetchall())
    first = min(launched.values())
    later = {p for p, at in launched.items() if at > first}
    assert later and set(launched) - later  # established products and newer ones
    earlier_buyers = c.execute(f"""SELECT count(DISTINCT customer_id) FROM
        read_csv('{out}/orders/*.csv', all_varchar=true)
        WHERE product_id IN ? AND ordered_at::TIMESTAMP < ?""",
        [sorted(set(launched) - later), min(launched[p] for p in later)]).fetchone()[0]  # fmt: skip
    assert earlier_buyers >= 20
    gold = c.execute(f"""SELECT count(*) FROM (SELECT customer_id FROM
        read_csv('{out}/orders/*.csv', all_varchar=true) WHERE status = 'completed'
        GROUP BY 1 HAVING sum(quantity::INT * unit_price::DECIMAL(18,4)
                              - discount_amount::DECIMAL(18,4)) >= 1500)""").fetchone()[0]
    assert gold >= 10  # 0.2% of customers; a world without big spenders has about 0.03%


def test_the_experiment_world_is_deterministic_and_bounded(tmp_path):
    """The same arguments write the same bytes; more customers than its phone numbers can
    hold is refused."""
    from datetime import UTC, datetime

    from simulator.experiment_world import MAX_CUSTOMERS, write_experiment_world

    decided = datetime(2026, 6, 10, 15, tzinfo=UTC)
    rows = write_experiment_world(tmp_path / "a", decided, worlds=3, customers=16)
    assert rows == {"products": 1, "customers": 48, "consent": 48, "orders": 96}
    write_experiment_world(tmp_path / "b", decided, worlds=3, customers=16)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.csv"))
    assert files and all(
        (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files
    )
    with pytest.raises(ValueError, match="customers in all"):
        write_experiment_world(tmp_path / "c", decided, worlds=2, customers=MAX_CUSTOMERS)
