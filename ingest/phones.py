"""Phone numbers: libphonenumber's metadata compiled into SQL, and its parser for the rest.

Validation is set-based: a number must be E.164 and match a mobile pattern (SMS needs a
mobile) of its own calling code, or of the row's country when asked: one alternation over
all regions, which RE2 runs as a single automaton. Patterns are constants, so DuckDB
compiles each regex once per query instead of once per row.

A value that is not already a valid E.164 mobile (``(212) 555-0100``, ``06 12 34 56 78``
with country FR, ``0044 …``) goes through libphonenumber's parser, registered in DuckDB as
``PARSE_FUNCTION``: only those rows pay for Python, so an export already in E.164 costs one
regex per row.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache

import duckdb
import phonenumbers
import pyarrow as pa
from phonenumbers import PhoneMetadata

PARSE_FUNCTION = "retentext_phone_e164"


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


@cache
def number_patterns() -> dict[str, list[str]]:
    """calling code -> national patterns of every valid number (landlines, toll-free, ...)"""
    by_code: dict[str, list[str]] = defaultdict(list)
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        md = PhoneMetadata.metadata_for_region(region)
        if md.general_desc is not None and md.general_desc.national_number_pattern:
            by_code[str(md.country_code)].append(md.general_desc.national_number_pattern)
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


def phone_is_number_sql(phone: str) -> str:
    """SQL boolean: ``phone`` is E.164 and a valid number of any kind (a landline, say)."""
    pattern = "(?:" + "|".join(_full_pattern(c, p) for c, p in number_patterns().items()) + ")"
    return f"coalesce(regexp_full_match({phone}, {_lit(pattern)}), false)"


def to_e164(text: str, country: str | None) -> str | None:
    """A number as people and exports write it, in E.164; None when it is not one number.

    National formats are read with the row's country (``0612345678`` with FR); an
    international prefix (00, 011) is read as such. An extension (``x5``) makes the value
    unusable for SMS, so it is refused rather than dropped."""
    text = text.strip()
    if text.lower().startswith("tel:"):
        text = text[4:]
    region = (
        country.upper() if country and country.upper() in phonenumbers.SUPPORTED_REGIONS else None
    )
    if region is None and text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if number.extension:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _parse_column(phones: pa.Array, countries: pa.Array) -> pa.Array:
    out = [
        None if phone is None else to_e164(phone, country)
        for phone, country in zip(phones.to_pylist(), countries.to_pylist(), strict=True)
    ]
    return pa.array(out, pa.string())


def register_phone_parser(con: duckdb.DuckDBPyConnection) -> None:
    """Make ``PARSE_FUNCTION(phone, country)`` callable in ``con``'s queries."""
    known = con.execute(
        "SELECT count(*) FROM duckdb_functions() WHERE function_name = ?", [PARSE_FUNCTION]
    ).fetchall()[0][0]
    if not known:
        con.create_function(
            PARSE_FUNCTION, _parse_column, ["VARCHAR", "VARCHAR"], "VARCHAR", type="arrow",
            null_handling="special", side_effects=False,
        )  # fmt: skip


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
