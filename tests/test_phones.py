"""The SQL phone check agrees with libphonenumber itself on the same numbers."""

import duckdb
import numpy as np
import phonenumbers

from ingest.phones import phone_is_valid_sql

MOBILE = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


def _reference(phone: str, country: str | None) -> bool:
    try:
        parsed = phonenumbers.parse(phone)
    except phonenumbers.NumberParseException:
        return False
    if (
        not phone.startswith("+")
        or phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) != phone
    ):
        return False
    regions = (
        [country] if country else phonenumbers.region_codes_for_country_code(parsed.country_code)
    )
    return any(
        phonenumbers.is_valid_number_for_region(parsed, r)
        and phonenumbers.number_type(parsed) in MOBILE
        for r in regions
    )


def test_sql_matches_phonenumbers_on_random_numbers():
    rng = np.random.default_rng(5)
    cases = []
    for country, code, length in [
        ("US", "1", 10),
        ("CA", "1", 10),
        ("GB", "44", 10),
        ("FR", "33", 9),
        ("DE", "49", 11),
        ("DE", "49", 10),
        ("AU", "61", 9),
        ("BR", "55", 11),
    ]:
        for _ in range(150):
            digits = "".join(map(str, rng.integers(0, 10, length)))
            cases.append((f"+{code}{digits}", country))
            cases.append((f"+{code}{digits}", None))
    cases += [
        ("+1 415 555 0123", "US"),
        ("0044 7700 900000", None),
        ("+", None),
        ("+4477123456789012", "GB"),
        ("+14155550123", "GB"),
    ]
    con = duckdb.connect()
    con.execute("CREATE TABLE t (phone VARCHAR, country VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", cases)
    got = con.execute(
        f"SELECT phone, country, {phone_is_valid_sql('phone', 'country')} FROM t"
    ).fetchall()
    mismatches = [(p, c, v) for p, c, v in got if v != _reference(p, c)]
    assert not mismatches, mismatches[:10]
    assert sum(v for *_, v in got) > 100  # the sample holds plenty of valid numbers too
