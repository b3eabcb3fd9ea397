"""Set-based phone validation: libphonenumber's own metadata compiled into one SQL expression.

Calling codes are prefix-free, so a ``CASE`` on the prefix finds the code; the national number
must then match the mobile pattern (SMS needs a mobile) of the customer's country, or of any
region sharing the code when the row has no country. Patterns are constants, so DuckDB
compiles each regex once per query instead of once per row.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache

import phonenumbers
from phonenumbers import PhoneMetadata

E164 = r"\+[1-9][0-9]{6,14}"


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


def phone_is_valid_sql(phone: str, country: str | None) -> str:
    """SQL boolean: ``phone`` is E.164 and a valid mobile number (for ``country`` if given)."""
    branches = []
    for code, entries in mobile_patterns().items():
        nsn = f"substr({phone}, {len(code) + 2})"
        checks = {
            region: f"regexp_full_match({nsn}, {_lit('(?:' + pattern + ')')})"
            for region, pattern in entries
        }
        any_region = " OR ".join(checks.values())
        if country is None:
            body = f"({any_region})"
        else:
            by_country = " ".join(f"WHEN {_lit(r)} THEN {c}" for r, c in checks.items())
            body = (
                f"(CASE WHEN {country} IS NULL THEN ({any_region}) "
                f"ELSE CASE {country} {by_country} ELSE false END END)"
            )
        branches.append(f"WHEN starts_with({phone}, '+{code}') THEN {body}")
    return (
        f"(CASE WHEN NOT regexp_full_match({phone}, {_lit(E164)}) THEN false "
        + " ".join(branches)
        + " ELSE false END)"
    )
