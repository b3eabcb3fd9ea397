"""Set-based phone validation: libphonenumber's own metadata compiled into one SQL expression.

A number must be E.164 and match the mobile pattern (SMS needs a mobile) of the row's country,
or of any region when the row has no country: one alternation over all regions, which RE2
runs as a single automaton. Patterns are constants, so DuckDB compiles each regex once per
query instead of once per row.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache

import phonenumbers
from phonenumbers import PhoneMetadata


@cache
def mobile_patterns() -> dict[str, list[tuple[str, str]]]:
    """calling code -> [(region, national mobile number pattern)]"""
    by_code: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        md = PhoneMetadata.metadata_for_region(region)
        desc = md.mobile if md.mobile and md.mobile.national_number_pattern else md.general_desc
        if desc is None or not desc.national_number_pattern:
            continue
        by_code[str(md.country_code)].append((region, desc.national_number_pattern))
    return dict(by_code)


def known_countries() -> list[str]:
    return sorted(region for entries in mobile_patterns().values() for region, _ in entries)


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _full_pattern(code: str, patterns: list[str]) -> str:
    return r"\+" + code + "(?:" + "|".join(f"(?:{p})" for p in patterns) + ")"


def any_region_pattern() -> str:
    """One regex for every valid mobile number in any region (calling codes are prefix-free)."""
    return (
        "(?:"
        + "|".join(
            _full_pattern(code, [p for _, p in entries])
            for code, entries in mobile_patterns().items()
        )
        + ")"
    )


def phone_is_valid_sql(phone: str, country: str | None) -> str:
    """SQL boolean: ``phone`` is E.164 and a valid mobile number (for ``country`` if given)."""
    anywhere = f"regexp_full_match({phone}, {_lit(any_region_pattern())})"
    if country is None:
        return f"coalesce({anywhere}, false)"
    by_country = " ".join(
        f"WHEN {_lit(region)} THEN regexp_full_match({phone}, {_lit(_full_pattern(code, [p]))})"
        for code, entries in mobile_patterns().items()
        for region, p in entries
    )
    return (
        f"coalesce(CASE WHEN {country} IS NULL THEN {anywhere} "
        f"ELSE CASE {country} {by_country} ELSE false END END, false)"
    )


UNKNOWN_ZONE = "Etc/Unknown"


def mobile_numbers_are_geographic(country_code: int) -> bool:
    """libphonenumber places a mobile number by its prefix only where mobile numbers are
    geographic (NANP, where mobile and fixed lines share patterns; a few such as Brazil);
    elsewhere (Australia, the UK) a mobile number only tells its country."""
    same_patterns = any(
        PhoneMetadata.metadata_for_region(region).same_mobile_and_fixed_line_pattern
        for region in phonenumbers.region_codes_for_country_code(country_code)
        if PhoneMetadata.metadata_for_region(region) is not None
    )
    return same_patterns or phonenumbers.is_number_type_geographical(
        phonenumbers.PhoneNumberType.MOBILE, country_code
    )


def time_zone_prefix_rows() -> list[tuple[str, str]]:
    """(number prefix without '+', IANA zone) for mobile numbers, from libphonenumber's own
    time zone map: the data of ``dbt_project/seeds/phone_prefix_time_zones.csv``. The longest
    matching prefix of a number gives its zones; several zones mean the number alone does not
    tell which. Where mobile numbers are not geographic only the country's row is kept."""
    from phonenumbers.tzdata import TIMEZONE_DATA

    rows = []
    for prefix, zones in TIMEZONE_DATA.items():
        code = next(
            int(prefix[:n]) for n in (1, 2, 3)
            if int(prefix[:n]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE
        )  # fmt: skip
        if prefix != str(code) and not mobile_numbers_are_geographic(code):
            continue
        rows.extend((prefix, zone) for zone in zones if zone != UNKNOWN_ZONE)
    return sorted(rows)


def write_time_zone_seed(path) -> int:
    """Regenerate the seed after a phonenumbers upgrade (a test fails when they differ)."""
    import csv

    rows = time_zone_prefix_rows()
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["prefix", "time_zone"])
        writer.writerows(rows)
    return len(rows)
