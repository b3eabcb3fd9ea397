"""Any CSV export as landing files, by a mapping file (``retentext import csv``).

The mapping says which landing source the file fills, how the file is written and which of
its columns is which contract column::

    source: orders
    encoding: cp1252            # utf-8 (default; a BOM is dropped), cp1252, latin-1, utf-16
    delimiter: ";"
    decimal: ","                # decimal separator of numbers (default ".")
    thousands: " "              # grouping separator, if any (no-break spaces always go)
    timestamp_format: "%d/%m/%Y %H:%M"   # strptime format of the timestamp columns
    time_zone: Europe/Paris     # the zone naive timestamps are in (none: they stay naive
                                # and ingest quarantines them as without a time zone)
    columns:
      order_id: "N° commande"   # contract column: export column
      currency: {value: EUR}    # or a constant

Values that do not parse (a number, a date) are written as they were: ingest quarantines
the row with the reason, nothing is dropped here. A row lands in the file of its day (the
source's first required timestamp, in UTC); a row whose day cannot be read lands on the
earliest day of the file, where ingest names its problem.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

import duckdb
import yaml

from ingest.importers.exports import read_export
from ingest.importers.landing_writer import ImportSummary, write_landing
from ingest.spec import Column, sources
from ingest.validate import ident, lit

GROUPING_SPACES = ("\u00a0", "\u202f")  # what Excel in France writes between thousands


@dataclass(frozen=True)
class Mapping:
    source: str
    columns: dict[str, str | dict]
    encoding: str = "utf-8"
    delimiter: str = ","
    decimal: str = "."
    thousands: str | None = None
    timestamp_format: str | None = None
    time_zone: str | None = None


def load_mapping(path: Path) -> Mapping:
    """The mapping file, checked against the contract; a clear error when it does not fit."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    source = raw.get("source")
    if source not in sources():
        raise ValueError(f"{path}: source must be one of {', '.join(sources())}, not {source!r}")
    columns = raw.get("columns") or {}
    contract = sources()[source]
    unknown = sorted(set(columns) - set(contract.names))
    if unknown:
        raise ValueError(f"{path}: {', '.join(unknown)} not in the {source} contract")
    missing = [c for c in contract.required if c not in columns]
    if missing:
        raise ValueError(f"{path}: the {source} contract requires {', '.join(missing)}")
    try:
        codecs.lookup(raw.get("encoding", "utf-8"))
    except LookupError as exc:
        raise ValueError(f"{path}: unknown encoding {raw.get('encoding')!r}") from exc
    options = {k: raw[k] for k in ("encoding", "delimiter", "decimal", "thousands",
                                   "timestamp_format", "time_zone") if k in raw}  # fmt: skip
    return Mapping(source=source, columns=columns, **options)


def import_csv(export: Path, mapping: Mapping, out: Path, tag: str) -> ImportSummary:
    """Landing files under ``out`` from ``export`` read as ``mapping`` says."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    present = _read(con, export, mapping)
    named = {v for v in mapping.columns.values() if isinstance(v, str)}
    absent = sorted(named - present)
    if absent:
        raise ValueError(
            f"{export}: no column {', '.join(map(repr, absent))}; the header has "
            f"{', '.join(map(repr, sorted(present)))}"
        )
    query = _query(mapping)
    if con.execute(f"SELECT count(*) FROM ({query}) WHERE day IS NULL").fetchall()[0][0]:
        raise ValueError(f"{export}: no row has a readable {_day_column(mapping)}; "
                         "check timestamp_format and the column mapped to it")  # fmt: skip
    summary = ImportSummary()
    summary.files = write_landing(con, query, mapping.source, out, tag)
    unmapped = sorted(present - named)
    if unmapped:
        summary.notes.append(f"export columns not mapped, left out: {', '.join(unmapped)}")
    con.close()
    return summary


def _read(con, export: Path, mapping: Mapping) -> set[str]:
    """The export, decoded as the mapping says, as table ``export`` of text columns."""
    encoding = "utf-8-sig" if codecs.lookup(mapping.encoding).name == "utf-8" else mapping.encoding
    try:
        text = Path(export).read_bytes().decode(encoding)
        return read_export(con, "export", text, mapping.delimiter) - {"_row"}
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{export}: {exc} (encoding {mapping.encoding})") from exc


def _number(v: str, mapping: Mapping) -> str:
    for sep in (*GROUPING_SPACES, *([mapping.thousands] if mapping.thousands else [])):
        v = f"replace({v}, {lit(sep)}, '')"
    if mapping.decimal != ".":
        v = f"replace({v}, {lit(mapping.decimal)}, '.')"
    return v


def _timestamp(v: str, mapping: Mapping) -> str:
    """ISO UTC text where the value reads with the declared format and zone; else as is."""
    if not mapping.timestamp_format:
        return v
    naive = f"try_strptime({v}, {lit(mapping.timestamp_format)})"
    if mapping.time_zone:
        utc = f"timezone('UTC', timezone({lit(mapping.time_zone)}, {naive}))"
        shown = f"strftime({utc}, '%Y-%m-%dT%H:%M:%SZ')"
    else:
        shown = f"strftime({naive}, '%Y-%m-%d %H:%M:%S')"  # naive: ingest says so
    return f"coalesce({shown}, {v})"


def _value(col: Column, spec: str | dict, mapping: Mapping) -> str:
    if isinstance(spec, dict):
        return lit(spec["value"])
    v = f"trim({ident(spec)})"
    if col.type in ("integer", "decimal"):
        return _number(v, mapping)
    if col.type == "timestamp":
        return _timestamp(v, mapping)
    return v


def _query(mapping: Mapping) -> str:
    by_name = {c.name: c for c in sources()[mapping.source].columns}
    values = ",\n".join(
        f"{_value(by_name[name], spec, mapping)} AS {ident(name)}"
        for name, spec in mapping.columns.items()
    )
    day = f"try_cast(left({ident(_day_column(mapping))}, 10) AS DATE)"
    return f"""
    WITH mapped AS (SELECT {values}, _row FROM export)
    SELECT * EXCLUDE (_row), coalesce({day}, (SELECT min({day}) FROM mapped)) AS day
    FROM mapped ORDER BY _row"""


def _day_column(mapping: Mapping) -> str:
    """The column whose day is the row's landing day: the source's first required time."""
    contract = sources()[mapping.source]
    return next(c.name for c in contract.columns if c.type == "timestamp" and c.required)
