"""Validation SQL built from the source contract: parse, type and give each bad line a reason.

Input relations: ``lines(file_idx, line_number, raw BLOB)`` and ``files`` (one row per file:
format, field positions from its header, file-level error). Output: one row per non-blank
line with typed columns, ``reason`` (the first failing check, a short stable phrase) and
``detail`` (every failing check, specific). All of it is one set-based query.
"""

from __future__ import annotations

import json

from ingest.phones import PARSE_FUNCTION, known_countries, phone_is_number_sql, phone_is_valid_sql
from ingest.spec import Column, Source

# one CSV field: quoted (with "" escapes) or bare; lines get a leading comma so every field
# starts with one and no match is empty
CSV_FIELD_RE = r',(?:"(?:[^"]|"")*"|[^,"]*)'  # no capture group: RE2 can use its DFA
CSV_LINE_RE = r'(?:,(?:"(?:[^"]|"")*"|[^,"]*))*'
OFFSET_RE = r"[+-][0-9]{2}(:?[0-9]{2})?$"
CONTROL_RE = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F]"
JSON_SPACE = ("' '", "chr(9)", "chr(13)", "chr(10)")  # white space JSON allows before a value
FUTURE_SLACK = "INTERVAL 2 DAY"  # a row may be stamped up to a day after its file's day ends
OLDEST = "TIMESTAMP '1900-01-01'"


def lit(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


MAX_FIELD_CHARS = 1000  # a name, id or phone number is far shorter; a 1 MB "name" is an attack
MAX_JSON_CHARS = 20000  # event properties


def _trimmed(v: str) -> str:
    """``trim(v)`` (which strips Unicode space separators), called only where it may change
    the value: trim copies every string it returns, and that copy was a sixth of the
    validation's time. A value cut from a ``plain`` line is ASCII, so only ' ' can be
    trimmed from it."""
    return (
        f"CASE WHEN plain AND NOT ({v} ^@ ' ' OR ends_with({v}, ' ')) THEN {v} ELSE trim({v}) END"
    )


def _picked(col: Column) -> str:
    """The column's text as cut from the line: its field (CSV) or its member (JSON)."""
    return (
        f"CASE WHEN fmt = 'csv' THEN fields[idx_{col.name}] "
        f"WHEN json_ok THEN json_values[{lit(col.name)}] END AS {ident('p_' + col.name)}"
    )


def _value(col: Column) -> str:
    return f"nullif({_trimmed(ident('p_' + col.name))}, '') AS {ident('v_' + col.name)}"


def _is_mobile(col: Column) -> str:
    """A phone value already in E.164 and a valid mobile: taken as it is, no parse."""
    return f"{phone_is_valid_sql(ident('v_' + col.name), None)} AS {ident('m_' + col.name)}"


def _e164(col: Column) -> str:
    v, country = (
        ident("v_" + col.name),
        ident("v_" + col.country_column) if col.country_column else "NULL",
    )
    return f"CASE WHEN {ident('m_' + col.name)} THEN {v} ELSE {PARSE_FUNCTION}({v}, {country}) END"


def _has_zone(v: str) -> str:
    """The value ends in Z or a UTC offset. A suffix test first: a regex over millions of
    timestamps costs more than the rest of their validation."""
    return (
        f"CASE WHEN right({v}, 1) IN ('Z', 'z') THEN true WHEN ends_with({v}, ' UTC') THEN true "
        f"ELSE regexp_matches(right({v}, 6), {lit(OFFSET_RE)}) END"
    )


def _typed(col: Column) -> str:
    v = ident("v_" + col.name)
    if col.type == "integer":
        expr = f"TRY_CAST({v} AS BIGINT)"
    elif col.type == "decimal":
        expr = f"TRY_CAST({v} AS DECIMAL(18,4))"
    elif col.type == "timestamp":
        # exports write the offset after a space (Shopify: 2025-10-07 09:50:26 +0200)
        spaced = f"regexp_replace({v}, ' ([+-][0-9]{{2}}:?[0-9]{{2}})$', '\\1')"
        expr = (
            f"CASE WHEN {_has_zone(v)} THEN timezone('UTC', "
            f"coalesce(TRY_CAST({v} AS TIMESTAMPTZ), TRY_CAST({spaced} AS TIMESTAMPTZ))) END"
        )
    elif col.type == "phone":
        expr = _e164(col)
    else:
        expr = v
    return f"{expr} AS {ident(col.name)}"


def _check(cond: str, reason: str, detail: str) -> tuple[str, str, str]:
    """A failing condition, its reason (a stable phrase) and its detail (SQL text)."""
    return cond, lit(reason), detail


def column_checks(col: Column) -> list[tuple[str, str, str]]:
    """(condition, reason, detail) of every check on one column: the checks every field
    gets, then those of its type."""
    v, t, name = ident("v_" + col.name), ident(col.name), col.name
    shown = f"{lit(name + '=')} || {v}"
    typed = TYPE_CHECKS.get(col.type)
    return _field_checks(col, v) + (typed(col, v, t, shown) if typed else [])


def _field_checks(col: Column, v: str) -> list[tuple[str, str, str]]:
    name = col.name
    out = []
    if col.required:
        out.append(_check(f"{v} IS NULL", "missing required field", lit(f"{name} is empty")))
    # hostile input: no field needs more, and control characters (NUL, escapes) are never data
    limit = MAX_JSON_CHARS if col.type == "json" else MAX_FIELD_CHARS
    out.append(
        _check(
            f"length({v}) > {limit}",
            "field too long",
            f"{lit(name + ' has ')} || length({v})::VARCHAR || {lit(f' characters (max {limit})')}",
        )
    )
    if col.type != "json":
        out.append(
            _check(
                f"maybe_control AND regexp_matches({v}, {lit(CONTROL_RE)})",
                "control characters in field",
                lit(f"{name} holds NUL or other control characters"),
            )
        )
    return out


def _number_checks(col: Column, v: str, t: str, shown: str) -> list[tuple[str, str, str]]:
    out = [
        _check(f"{v} IS NOT NULL AND {t} IS NULL", "non-numeric value", shown),
        _check(f"{t} < 0", "negative value", shown),
    ]
    if col.min is not None and col.min > 0:
        out.append(
            _check(
                f"{t} >= 0 AND {t} < {col.min}",
                "value out of range",
                f"{shown} || {lit(f' (minimum {col.min})')}",
            )
        )
    return out


def _timestamp_checks(col: Column, v: str, t: str, shown: str) -> list[tuple[str, str, str]]:
    naive = f"(NOT {_has_zone(v)} AND TRY_CAST({v} AS TIMESTAMP) IS NOT NULL)"
    return [
        _check(f"{v} IS NOT NULL AND {naive}", "timestamp without time zone", shown),
        _check(f"{v} IS NOT NULL AND {t} IS NULL AND NOT {naive}", "unparseable timestamp", shown),
        _check(
            f"{t} > partition_date + {FUTURE_SLACK}",
            "timestamp far in the future",
            f"{shown} || ' in the file of ' || partition_date::VARCHAR",
        ),
        _check(f"{t} < {OLDEST}", "timestamp far in the past", shown),
    ]


def _enum_checks(col: Column, v: str, t: str, shown: str) -> list[tuple[str, str, str]]:
    values = ", ".join(lit(x) for x in col.values)
    return [
        _check(f"{v} IS NOT NULL AND {v} NOT IN ({values})", col.reason or "unknown value", shown)
    ]


def _phone_checks(col: Column, v: str, t: str, shown: str) -> list[tuple[str, str, str]]:
    # CASE, not AND: the regexes run only on values that were not a mobile as written
    as_written = f"{v} IS NULL OR {ident('m_' + col.name)}"
    parsed = f"CASE WHEN {as_written} THEN NULL ELSE {t} END"
    a_number = f"{phone_is_valid_sql(parsed, None)} OR {phone_is_number_sql(parsed)}"
    return [
        _check(
            f"CASE WHEN {as_written} THEN false ELSE NOT ({a_number}) END",
            "invalid phone number",
            shown,
        ),
        _check(
            f"CASE WHEN {as_written} THEN false ELSE NOT {phone_is_valid_sql(parsed, None)} END",
            "phone number cannot receive SMS",
            f"{shown} || ' is ' || {t} || ', not a mobile number'",
        ),
    ]


def _zone_checks(col: Column, v: str, t: str, shown: str) -> list[tuple[str, str, str]]:
    return [
        _check(
            f"{v} IS NOT NULL AND {v} NOT IN (SELECT name FROM pg_timezone_names())",
            "unknown time zone",
            shown,
        )
    ]


def _country_checks(col: Column, v: str, t: str, shown: str) -> list[tuple[str, str, str]]:
    values = ", ".join(lit(x) for x in known_countries())
    return [_check(f"{v} IS NOT NULL AND {v} NOT IN ({values})", "unknown country", shown)]


def _json_checks(col: Column, v: str, t: str, shown: str) -> list[tuple[str, str, str]]:
    return [_check(f"{v} IS NOT NULL AND NOT json_valid({v})", "invalid JSON value", shown)]


# the checks of each column type beyond those every field gets
TYPE_CHECKS = {
    "integer": _number_checks,
    "decimal": _number_checks,
    "timestamp": _timestamp_checks,
    "enum": _enum_checks,
    "phone": _phone_checks,
    "time_zone": _zone_checks,
    "country": _country_checks,
    "json": _json_checks,
}


def batch_sql(src: Source) -> str:
    """The query that turns ``lines`` + ``files`` into typed rows with reasons: each line
    decoded and split into fields (CSV) or values (JSON), judged for its structure, each
    value picked, typed and checked; the first failing check is the row's reason."""
    return f"""
WITH decoded AS (
{_decoded_sql(src)}), split AS (
{_split_sql(src)}), structural AS (
{_structural_sql(src)}{_checked_sql(src)}
"""


def _decoded_sql(src: Source) -> str:
    """Each line beside its file's facts and the contract's column positions."""
    idx = ", ".join(f"f.idx_{c}" for c in src.names)
    return f"""    SELECT l.file_idx, l.line_number, l.raw, f.fmt, f.ncols, f.partition_date,
           f.file_error, f.file_error_detail, f.extra_names, f.extra_idx, {idx},
           l.text AS line,
           -- a quoted line without "" escapes: cut at its quotes, then only the parts
           -- outside quotes at commas (a third of the regex's time on consent texts)
           CASE WHEN f.fmt = 'csv' AND contains(l.text, '"') AND NOT contains(l.text, '""')
                THEN string_split(l.text, '"') END AS quote_parts
    FROM lines l JOIN files f USING (file_idx)
"""


def _split_sql(src: Source) -> str:
    """A CSV line's fields, a JSON line's values, and two cheap per-line tests."""
    json_fields = lit(json.dumps(dict.fromkeys(src.names, "VARCHAR")))
    return f"""    SELECT *,
        CASE WHEN line IS NULL OR fmt <> 'csv' THEN NULL
             WHEN NOT contains(line, '"') THEN string_split(line, ',')
             -- the comma beside each quote is the field's edge, not a field: a part outside
             -- quotes loses its first piece after a quote, its last before one. A malformed
             -- line is split somehow here and quarantined by the full match below.
             WHEN quote_parts IS NOT NULL THEN flatten(list_transform(quote_parts,
                  lambda part, i: CASE WHEN i % 2 = 0 THEN [part]
                                       ELSE string_split(part, ',')[
                                            CASE WHEN i > 1 THEN 2 ELSE 1 END:
                                            CASE WHEN i < len(quote_parts) THEN -2 ELSE -1 END]
                                       END))
             ELSE list_transform(regexp_extract_all(',' || line, {lit(CSV_FIELD_RE)}),
                  lambda x: CASE WHEN x[2] = '"' THEN replace(x[3:-2], '""', '"')
                                 ELSE x[2:] END)
        END AS fields,
        -- valid JSON that opens with a brace is an object: no second parse for its type.
        -- ltrim copies the line, so only a line that starts with white space gets it.
        -- try() makes the values NULL where the line is not valid JSON, which is exactly
        -- json_valid's verdict without a parse of its own (a fifth of the extraction's time).
        -- A struct, not a list of paths: each value is then a column, not an element copied
        -- out of a list at every use (same values; 14% of the events' validation)
        CASE WHEN fmt = 'jsonl' AND CASE
                  WHEN line ^@ '{{' THEN true
                  WHEN {" OR ".join(f"line ^@ {w}" for w in JSON_SPACE)} THEN
                       left(ltrim(line, {" || ".join(JSON_SPACE)}), 1) = '{{'
                  ELSE false END
             THEN try(from_json(line, {json_fields})) END AS json_values,
        -- one test per line, not per field. Valid JSON holds no raw control character but
        -- DEL (the parser rejects the others), though it may write any as an escape (and
        -- every control character's escape starts with \\u00).
        CASE WHEN fmt = 'jsonl' THEN contains(line, chr(127)) OR contains(line, '\\u00')
             ELSE regexp_matches(line, {lit(CONTROL_RE)}) END AS maybe_control,
        -- ASCII, and no JSON escape that could decode to a wider space: see _trimmed
        strlen(line) = length(line) AND NOT (fmt = 'jsonl' AND contains(line, '\\u')) AS plain
    FROM decoded
"""


def _structural_sql(src: Source) -> str:
    """What is wrong with a line as a whole (file, encoding, quoting, column count, JSON)."""
    known = "[" + ", ".join(lit(c) for c in src.names) + "]"
    quotes = "length(line) - length(replace(line, '\"', ''))"
    return f"""    SELECT *,
        json_values IS NOT NULL AS json_ok,
        CASE WHEN json_values IS NOT NULL THEN list_filter(json_keys(line),
                                           lambda k: NOT list_contains({known}, k))
        END AS json_extra_keys,
        CASE
            WHEN file_error IS NOT NULL THEN {{'reason': file_error, 'detail': file_error_detail}}
            WHEN line IS NULL THEN {{'reason': 'invalid UTF-8',
                                    'detail': 'line is not valid UTF-8 text'}}
            WHEN fmt = 'csv' AND contains(line, '"')
                 AND NOT regexp_full_match(',' || line, {lit(CSV_LINE_RE)}) THEN
                 CASE WHEN ({quotes}) % 2 = 1
                      THEN {{'reason': 'unclosed quote', 'detail': 'a quoted field is not closed'}}
                      ELSE {{'reason': 'malformed quoting',
                            'detail': 'a quote appears inside an unquoted field'}} END
            WHEN fmt = 'csv' AND len(fields) <> ncols THEN
                 {{'reason': 'wrong column count', 'detail': 'expected ' || ncols::VARCHAR ||
                   ' fields, found ' || len(fields)::VARCHAR}}
            WHEN fmt = 'jsonl' AND json_values IS NULL THEN
                 {{'reason': 'invalid JSON', 'detail': 'line is not one JSON object'}}
        END AS broken
    FROM split
"""


def _checked_sql(src: Source) -> str:
    """From the structural verdict on: values picked, typed and checked column by column
    and by the source's rules; the first failing check is the reason."""
    known_nulls = lit(json.dumps(dict.fromkeys(src.names)))
    picked = ",\n        ".join(_picked(c) for c in src.columns)
    values = ",\n        ".join(_value(c) for c in src.columns)
    typed = ",\n        ".join(_typed(c) for c in src.columns)
    phones = [c for c in src.columns if c.type == "phone"]
    mobile = "".join(f",\n        {_is_mobile(c)}" for c in phones)
    kept_raw = "".join(f"{ident('v_' + c.name)} AS {ident(c.name + '_raw')}, " for c in phones)
    # a phone is judged against its country, so a bad country is reported first
    ordered = sorted(src.columns, key=lambda c: c.type == "phone")
    col_checks = [chk for c in ordered for chk in column_checks(c)]
    rule_checks = [_check(r.when, r.reason, lit(r.detail or r.reason)) for r in src.rules]
    checks = col_checks + rule_checks
    # the first failing check is the reason; every failing one is in the detail
    reason = "\n            ".join(f"WHEN {c} THEN {r}" for c, r, _ in checks)
    detail = ",\n            ".join(f"CASE WHEN {c} THEN {d} END" for c, _, d in checks)
    out_cols = ", ".join(ident(c) for c in src.names)
    return f"""), picked AS (
    -- each value cut once: the checks below read it several times, and a list element
    -- is copied out at every read (a fifth of the orders' validation query)
    SELECT *,
        {picked}
    FROM structural
), vals AS (
    SELECT file_idx, line_number, raw, line, partition_date, broken, maybe_control, plain,
        {values},
        CASE
            WHEN broken IS NOT NULL THEN NULL
            WHEN fmt = 'csv' AND len(extra_idx) > 0 THEN to_json(map(extra_names,
                 list_transform(extra_idx, lambda i: fields[i])))::VARCHAR
            -- the line without the contract's members: any key, however it is spelt
            WHEN len(json_extra_keys) > 0 THEN json_merge_patch(line, {known_nulls})::VARCHAR
        END AS extra
    FROM picked
), as_written AS (
    SELECT *{mobile}
    FROM vals
), typed AS (
    SELECT *,
        {typed}
    FROM as_written
), judged AS (
    SELECT *,
       CASE WHEN broken IS NOT NULL THEN broken.reason
            {reason}
       END AS reason
    FROM typed
), detailed AS (
    -- every failing check, worked out for the quarantined rows only
    SELECT *, CASE WHEN reason IS NULL THEN NULL
                   WHEN broken IS NOT NULL THEN broken.detail
                   ELSE nullif(concat_ws('; ',
            {detail}), '') END AS detail
    FROM judged
)
SELECT file_idx, line_number, partition_date, {out_cols}, {kept_raw}extra,
       -- kept for quarantine only: a copy of every good line would double the batch
       CASE WHEN reason IS NOT NULL THEN coalesce(line, raw::VARCHAR) END AS raw_record,
       reason, detail
FROM detailed"""
