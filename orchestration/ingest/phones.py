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
