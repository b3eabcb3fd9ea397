"""A recipient's zones when the profile has none: from the state or province, else from the
number (libphonenumber's map, shipped as a seed), and the send window open in all of them."""

from __future__ import annotations

import csv
from datetime import date

import duckdb
import phonenumbers
import pytest
from mini_warehouse import MiniWarehouse, campaign, program, utc
from phonenumbers.timezone import time_zones_for_number

from ingest.phones import time_zone_prefix_rows
from orchestration.cli import main
from send_jobs.decide import decide
from simulator.writer import simulate

SEED = "dbt_project/seeds/phone_prefix_time_zones.csv"

# customer -> (phone, country, region, profile zone, the zones expected)
PEOPLE = {
    "Z_WEST": ("+14155552671", "US", "", "", {"America/Los_Angeles"}),
    "Z_HAWAII": ("+18085551234", "US", "", "", {"Pacific/Honolulu"}),
    "Z_ALASKA": ("+19075551234", "US", "", "", {"America/Anchorage", "America/Adak"}),
    "Z_FLORIDA": ("+18136303190", "US", "FL", "", {"America/New_York", "America/Chicago"}),
    "Z_AU_MOBILE": ("+61412345678", "AU", "", "", {
        "Australia/Adelaide", "Australia/Brisbane", "Australia/Eucla", "Australia/Lord_Howe",
        "Australia/Perth", "Australia/Sydney", "Indian/Christmas", "Indian/Cocos"}),
    "Z_AU_VIC": ("+61412345679", "AU", "VIC", "", {"Australia/Melbourne"}),
    "Z_BRAZIL": ("+5511987654321", "BR", "", "", {"America/Sao_Paulo"}),
    "Z_AMAZONAS": ("+5592987654321", "BR", "AM", "", {"America/Manaus", "America/Eirunepe"}),
    "Z_NEWFOUNDLAND": ("+17092223333", "CA", "", "", {"America/Halifax", "America/St_Johns"}),
    "Z_PROFILE": ("+14155552672", "US", "CA", "America/Denver", {"America/Denver"}),
}  # fmt: skip


def test_the_phone_seed_is_libphonenumbers_map():
    with open(SEED, encoding="utf-8") as f:
        rows = [tuple(r) for r in csv.reader(f)][1:]
    assert rows == time_zone_prefix_rows(), (
        "phonenumbers changed: regenerate with ingest.phones.write_time_zone_seed"
    )


# Where this map and libphonenumber's time_zones_for_number differ for a mobile number: the
# Caribbean NANP islands, whose mobile numbers libphonenumber types as non-geographic and
# gives all 42 NANP zones (a window never open in all of them) while the area code names the
# island; and Micronesia, where we keep all three of the country's zones (Chuuk, Pohnpei,
# Kosrae) rather than Chuuk alone.
NANP_ISLANDS = {"AG", "AI", "AS", "BB", "BM", "BS", "DM", "GD", "JM", "KN", "KY", "LC", "MS",
                "SX", "TC", "TT", "VC", "VG"}  # fmt: skip


def zones_by_longest_prefix(e164: str, rows: list[tuple[str, str]]) -> set[str]:
    by_prefix: dict[str, set] = {}
    for prefix, zone in rows:
        by_prefix.setdefault(prefix, set()).add(zone)
    digits = e164[1:]
    for n in range(min(9, len(digits)), 0, -1):
        if digits[:n] in by_prefix:
            return by_prefix[digits[:n]]
    return set()


def test_the_seed_places_mobile_numbers_as_libphonenumber_does():
    """Every region's example mobile number, cross-checked against phonenumbers' own API."""
    rows = time_zone_prefix_rows()
    differ = {}
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
        if example is None:
            continue
        e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        theirs = set(time_zones_for_number(example)) - {"Etc/Unknown"}
        ours = zones_by_longest_prefix(e164, rows)
        if ours != theirs:
            differ[region] = (ours, theirs)
    assert set(differ) == NANP_ISLANDS | {"FM"}
    for region in NANP_ISLANDS:
        ours, theirs = differ[region]
        assert len(ours) == 1 and ours < theirs and len(theirs) == 42
    assert differ["FM"][1] < differ["FM"][0]


@pytest.mark.slow
def test_zones_come_from_region_then_number_when_the_profile_has_none(tmp_path):
    landing = tmp_path / "landing"
    simulate(landing, customers=200, start=date(2025, 1, 1), days=5, seed=5)
    with open(landing / "customers" / "2025-01-01.csv", "a", encoding="utf-8") as f:
        for cid, (phone, country, region, zone, _) in PEOPLE.items():
            f.write(f"{cid},Ada,{phone},{country},{region},{zone},en,2024-06-01T00:00:00Z\n")
    warehouse = tmp_path / "w.duckdb"
    assert main(["run", "--landing", str(landing), "--as-of", "2025-01-06T00:00:00Z",
                 "--warehouse", str(warehouse)]) == 0  # fmt: skip
    con = duckdb.connect(str(warehouse), read_only=True)
    got: dict[str, set] = {}
    for cid, zone, _ in con.execute(
        "SELECT customer_id, time_zone, time_zone_source FROM marts.customer_time_zones "
        "WHERE customer_id LIKE 'Z_%'"
    ).fetchall():
        got.setdefault(cid, set()).add(zone)
    assert got == {cid: p[4] for cid, p in PEOPLE.items()}
    sources = dict(con.execute(
        "SELECT customer_id, time_zone_source FROM marts.dim_customers WHERE customer_id IN "
        "('Z_WEST', 'Z_FLORIDA', 'Z_PROFILE')").fetchall())  # fmt: skip
    assert sources == {"Z_WEST": "phone", "Z_FLORIDA": "region", "Z_PROFILE": "profile"}
    # the simulated customers all have a profile zone: nothing else changes for them
    assert (
        con.execute(
            "SELECT count(*) FROM marts.customer_time_zones WHERE customer_id NOT LIKE 'Z_%' "
            "AND time_zone_source <> 'profile'"
        ).fetchone()[0]
        == 0
    )


@pytest.mark.parametrize(
    ("zones", "at", "outcome"),
    [
        # Florida: 08:30 in New York is 07:30 in the panhandle's Chicago time
        (("America/New_York", "America/Chicago"), "2026-06-10T12:30:00Z", "deferred"),
        (("America/New_York", "America/Chicago"), "2026-06-10T13:30:00Z", "sent"),
        # an Alaskan number: 09:00 in Anchorage is 08:00 on the Aleutians (Adak)
        (("America/Anchorage", "America/Adak"), "2026-06-10T17:00:00Z", "sent"),
        (("America/Anchorage", "America/Adak"), "2026-06-10T16:30:00Z", "deferred"),
        # an Australian mobile (9-20): noon in Sydney is 10:00 in Perth but 08:30 on Cocos
        (("Australia/Sydney", "Australia/Perth", "Indian/Cocos"), "2026-06-10T02:00:00Z",
         "deferred"),
        (("Australia/Sydney", "Australia/Perth", "Indian/Cocos"), "2026-06-10T04:00:00Z",
         "sent"),
    ],
)  # fmt: skip
def test_the_window_must_be_open_in_every_zone(tmp_path, zones, at, outcome):
    w = MiniWarehouse(tmp_path / "w.duckdb")
    country = "AU" if zones[0].startswith("Australia") else "US"
    where = {"country": country, "region": None, "time_zone": zones[0]}
    w.customer("C1", where=where)
    w.zones("C1", *zones)
    prog = program(global_control_share=0.0)
    run = decide(w.con, prog, [campaign(prog)], utc(at))
    got = w.con.execute(
        "SELECT outcome FROM sends.decisions WHERE run_id = ?", [run.run_id]
    ).fetchone()[0]
    assert got == outcome
