"""Load a range of daily partitions of one source into ``raw.<source>``, atomically.

For every file: rows read = rows accepted + rows quarantined + exact duplicates dropped.
Re-running a range deletes its rows (data, quarantine, file log) and loads them again: the
chunks go to staging tables (``raw.<source>__loading`` and schema ``raw_loading``, committed
chunk by chunk, so memory stays flat however long the range), then one transaction swaps the
range in. A load that replaces every row of its source (a first backfill) renames the staged
table into place instead of copying it. A failure leaves the previous state and a re-run
gives the same rows.
Duplicate keys: the first occurrence (earlier partition, then file, then line) wins; an exact
re-delivery is dropped and counted, other content under the same key is quarantined.
"""

from __future__ import annotations

import contextlib
import csv
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.landing import (
    LandingFile,
    as_text,
    discover,
    parse_header,
    read_landing_file,
    split_lines,
)
from ingest.phones import register_phone_parser
from ingest.spec import Source, sources
from ingest.validate import batch_sql, ident

CHUNK_BYTES = 256 * 2**20  # raw bytes handled per query; bounds memory on big backfills
FILE_LOG = pa.schema(  # raw.load_files, one row per file
    [
        ("source", pa.string()),
        ("file", pa.string()),
        ("partition_date", pa.date32()),
        ("file_size", pa.int64()),
        ("file_mtime_ns", pa.int64()),
        ("rows_read", pa.int64()),
        ("rows_accepted", pa.int64()),
        ("rows_quarantined", pa.int64()),
        ("duplicates_dropped", pa.int64()),
        ("blank_lines", pa.int64()),
        ("extra_columns", pa.list_(pa.string())),
        ("note", pa.string()),
        ("loaded_at", pa.timestamp("us")),
    ]
)


@dataclass
class FileReport:
    file: str
    partition_date: date
    rows_read: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    duplicates_dropped: int = 0
    blank_lines: int = 0
    extra_columns: list[str] = field(default_factory=list)
    note: str | None = None

    @property
    def reconciles(self) -> bool:
        return (
            self.rows_read == self.rows_accepted + self.rows_quarantined + self.duplicates_dropped
        )


@dataclass
class LoadReport:
    source: str
    start: date
    end: date
    files: list[FileReport] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    stray_files: list[str] = field(default_factory=list)

    def total(self, attr: str) -> int:
        return sum(getattr(f, attr) for f in self.files)


def _data_columns(src: Source) -> str:
    """Column definitions of ``raw.<source>`` (and of its staging table)."""
    cols = ", ".join(f"{ident(c.name)} {c.sql_type}" for c in src.columns)
    cols += "".join(f", {ident(name)} VARCHAR" for name in src.kept_raw)
    return f"""{cols}, extra VARCHAR, partition_date DATE NOT NULL,
        source_file VARCHAR NOT NULL, source_line BIGINT NOT NULL, loaded_at TIMESTAMP NOT NULL"""


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    for src in sources().values():
        con.execute(f"CREATE TABLE IF NOT EXISTS raw.{src.name} ({_data_columns(src)})")
        # a warehouse from before a column joined the contract (updated_at, phone_e164_raw)
        for name, sql_type in [(c.name, c.sql_type) for c in src.columns] + [
            (name, "VARCHAR") for name in src.kept_raw
        ]:
            con.execute(
                f"ALTER TABLE raw.{src.name} ADD COLUMN IF NOT EXISTS {ident(name)} {sql_type}"
            )
    con.execute("""CREATE TABLE IF NOT EXISTS raw.quarantine (source VARCHAR NOT NULL,
        file VARCHAR NOT NULL, line_number BIGINT, reason VARCHAR NOT NULL, detail VARCHAR,
        raw_record VARCHAR, partition_date DATE NOT NULL, loaded_at TIMESTAMP NOT NULL)""")
    con.execute("""CREATE TABLE IF NOT EXISTS raw.load_files (source VARCHAR NOT NULL,
        file VARCHAR NOT NULL, partition_date DATE NOT NULL, file_size BIGINT,
        file_mtime_ns BIGINT, rows_read BIGINT, rows_accepted BIGINT, rows_quarantined BIGINT,
        duplicates_dropped BIGINT, blank_lines BIGINT, extra_columns VARCHAR[], note VARCHAR,
        loaded_at TIMESTAMP NOT NULL)""")


def _file_entry(src: Source, idx: int, f: LandingFile) -> tuple[dict, pa.Table | None, FileReport]:
    """One file: its row in the ``files`` relation, its data lines, and its report."""
    report = FileReport(f.name, f.day)
    entry = {
        "file_idx": idx,
        "file_name": f.name,
        "fmt": f.fmt,
        "ncols": None,
        "partition_date": f.day,
        "file_error": None,
        "file_error_detail": None,
        "extra_names": [],
        "extra_idx": [],
    }
    entry.update({f"idx_{c}": None for c in src.names})
    try:
        data, entry["fmt"] = read_landing_file(f)
    except (OSError, EOFError, ValueError) as exc:  # unreadable, broken gzip, not Parquet
        report.note = f"cannot read file: {getattr(exc, 'strerror', None) or exc}"
        return entry, None, report
    lines = split_lines(data)
    first = 1
    if entry["fmt"] == "csv" and len(lines):
        try:
            header = parse_header(lines[0].as_py())
            first, lines = 2, lines.slice(1)
        except (UnicodeDecodeError, csv.Error, StopIteration):
            # no usable header: every line, the first included, is quarantined
            header = []
            entry["file_error"] = "unreadable header"
            entry["file_error_detail"] = "the first line is not a CSV header in UTF-8"
        entry["ncols"] = len(header)
        positions = {name: i + 1 for i, name in enumerate(header)}
        missing = [c for c in src.required if c not in positions]
        dupes = sorted({h for h in header if header.count(h) > 1})
        if header and dupes:
            entry["file_error"] = "duplicate column names"
            entry["file_error_detail"] = "repeated in header: " + ", ".join(dupes)
        elif header and missing:
            entry["file_error"] = "file missing required columns"
            entry["file_error_detail"] = "header lacks: " + ", ".join(missing)
        for c in src.names:
            entry[f"idx_{c}"] = positions.get(c)
        extra = [h for h in header if h not in src.names]
        entry["extra_names"] = extra
        entry["extra_idx"] = [positions[h] for h in extra]
        report.extra_columns = extra
        if entry["file_error"]:
            report.note = f"file rejected: {entry['file_error']} ({entry['file_error_detail']})"
    if not data:
        report.note = "empty file"
    elif len(lines) == 0:
        report.note = report.note or "header only, no rows"
    text, raw = as_text(lines)
    table = pa.table(
        {
            "file_idx": pa.array(np.full(len(lines), idx, np.int32)),
            "line_number": pa.array(np.arange(first, first + len(lines), dtype=np.int64)),
            "text": text,
            "raw": raw,
        }
    )
    # a blank line (nothing before its terminator) carries no record: counted, not loaded.
    # The filter copies every line, so a file without blank lines skips it.
    blank = _blank(text)
    report.blank_lines = int(np.count_nonzero(blank))
    if report.blank_lines:
        table = table.filter(pa.array(~blank))
    return entry, table, report


def _blank(text: pa.LargeStringArray) -> np.ndarray:
    """Which lines are empty text (not the null of a line that is not UTF-8), read from the
    array's offsets, far cheaper than Arrow compute over every line."""
    offsets = np.frombuffer(text.buffers()[1], np.int64)[text.offset : text.offset + len(text) + 1]
    empty = np.diff(offsets) == 0
    if text.null_count:
        empty &= pc.is_valid(text).to_numpy(zero_copy_only=False)
    return empty


def _files_table(src: Source, entries: list[dict]) -> pa.Table:
    schema = [
        ("file_idx", pa.int32()),
        ("file_name", pa.string()),
        ("fmt", pa.string()),
        ("ncols", pa.int32()),
        ("partition_date", pa.date32()),
        ("file_error", pa.string()),
        ("file_error_detail", pa.string()),
        ("extra_names", pa.list_(pa.string())),
        ("extra_idx", pa.list_(pa.int32())),
    ]
    schema += [(f"idx_{c}", pa.int32()) for c in src.names]
    return pa.Table.from_pylist(entries, schema=pa.schema(schema))


def _chunks(files: list[LandingFile]) -> list[list[tuple[int, LandingFile]]]:
    chunks, current, size = [], [], 0
    for i, f in enumerate(files):
        if current and size + f.size > CHUNK_BYTES:
            chunks.append(current)
            current, size = [], 0
        current.append((i, f))
        size += f.size
    if current:
        chunks.append(current)
    return chunks


def _same_key(a: str, b: str, src: Source) -> str:
    """Join condition: rows ``a`` and ``b`` are the same version of a record (an empty
    ``updated_at`` matches an empty one)."""
    return " AND ".join(
        f"{a}.{ident(k)} IS NOT DISTINCT FROM {b}.{ident(k)}"
        if k == "updated_at"
        else f"{a}.{ident(k)} = {b}.{ident(k)}"
        for k in src.version_key
    )


def _judge_sql(src: Source, start: date, end: date, staged: str | None) -> str:
    """Verdicts for the rows whose key is contested: seen twice in this batch or already
    loaded (outside the range, or in ``staged`` by an earlier chunk of this load, when
    given). Every other valid row is accepted without being sorted; a clean backfill of
    tens of millions of rows costs one hash aggregate over its keys. The key is the
    version key: a record with a new ``updated_at`` is a new version, not a conflict."""
    cols = ", ".join(ident(c) for c in src.names)
    key = ", ".join(ident(k) for k in src.version_key)
    key_text = (
        "concat_ws('/', " + ", ".join(f"r.{ident(k)}::VARCHAR" for k in src.version_key) + ")"
    )
    return f"""
WITH valid AS (
    SELECT {key} FROM batch WHERE reason IS NULL
), prior AS (
    SELECT {key}, hash({cols}) AS _prior_h, source_file || ':' || source_line::VARCHAR AS _seen
    FROM (SELECT * FROM raw.{src.name} WHERE partition_date NOT BETWEEN '{start}' AND '{end}'
          {f"UNION ALL BY NAME SELECT * FROM {staged}" if staged else ""}) AS x
    WHERE EXISTS (SELECT 1 FROM valid AS v WHERE {_same_key("v", "x", src)})
), contested AS (
    SELECT {key} FROM valid GROUP BY ALL HAVING count(*) > 1
    UNION SELECT {key} FROM prior
), ranked AS (
    SELECT file_idx, line_number, {key}, _h, first_value(_h) OVER w AS _first_h,
           first_value(file_idx) OVER w AS _first_file,
           first_value(line_number) OVER w AS _first_line, row_number() OVER w AS _rn
    FROM (SELECT *, hash({cols}) AS _h FROM batch WHERE reason IS NULL) AS b
    WHERE EXISTS (SELECT 1 FROM contested AS c WHERE {_same_key("c", "b", src)})
    WINDOW w AS (PARTITION BY {key} ORDER BY file_idx, line_number)
)
SELECT r.file_idx, r.line_number, CASE
        WHEN p._prior_h IS NOT NULL THEN
             CASE WHEN p._prior_h = r._h THEN 'duplicate' ELSE 'conflict' END
        WHEN r._rn = 1 THEN 'accepted'
        WHEN r._h = r._first_h THEN 'duplicate' ELSE 'conflict' END AS _verdict,
    'key ' || {key_text} || ' first seen at ' ||
        coalesce(p._seen, f.file_name || ':' || r._first_line::VARCHAR) AS _first_seen
FROM ranked r LEFT JOIN prior p ON {_same_key("p", "r", src)}
JOIN files f ON f.file_idx = r._first_file
"""


def load_range(
    con: duckdb.DuckDBPyConnection,
    source: str,
    landing: Path,
    start: date,
    end: date,
    loaded_at: datetime,
) -> LoadReport:
    """Load every landing file of ``source`` dated ``start``..``end`` (inclusive)."""
    src = sources()[source]
    found, strays = discover(landing, source)
    files = [f for f in found if start <= f.day <= end]
    report = LoadReport(source, start, end, stray_files=[str(s) for s in strays])
    ensure_tables(con)
    register_phone_parser(con)
    con.execute("SET TimeZone = 'UTC'")
    staging = _staging_tables(con, src)
    try:
        for chunk in _chunks(files):
            report.files.extend(_load_chunk(con, src, chunk, loaded_at, start, end, staging))
        con.execute("BEGIN TRANSACTION")
        try:
            _swap_in(con, source, start, end, staging)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        for table in staging.values():
            con.execute(f"DROP TABLE IF EXISTS {table}")
    for reason, n in con.execute(
        "SELECT reason, count(*) FROM raw.quarantine WHERE source = $src AND partition_date "
        "BETWEEN $s AND $e GROUP BY ALL ORDER BY 2 DESC, 1",
        {"s": start, "e": end, "src": source},
    ).fetchall():
        report.reasons[reason] = n
    return report


def _swap_in(
    con: duckdb.DuckDBPyConnection, source: str, start: date, end: date, staging: dict[str, str]
) -> None:
    """Inside the load's transaction: the range's old rows out, the staged rows in."""
    outside = con.execute(
        f"SELECT count(*) FROM raw.{source} WHERE partition_date NOT BETWEEN $s AND $e",
        {"s": start, "e": end},
    ).fetchall()[0][0]
    if outside:
        con.execute(
            f"DELETE FROM raw.{source} WHERE partition_date BETWEEN $s AND $e",
            {"s": start, "e": end},
        )
        con.execute(f"INSERT INTO raw.{source} BY NAME SELECT * FROM {staging['data']}")
    else:  # every row is replaced: rename the staged table into place, not copy it
        con.execute(f"DROP TABLE raw.{source}")
        con.execute(f"ALTER TABLE {staging['data']} RENAME TO {source}")
    for table, staged in (("raw.quarantine", "quarantine"), ("raw.load_files", "files")):
        con.execute(
            f"DELETE FROM {table} WHERE source = $src AND partition_date BETWEEN $s AND $e",
            {"s": start, "e": end, "src": source},
        )
        con.execute(f"INSERT INTO {table} SELECT * FROM {staging[staged]}")


def _staging_tables(con: duckdb.DuckDBPyConnection, src: Source) -> dict[str, str]:
    """Empty staging tables for one load of ``src`` (a crashed load's are replaced). The
    data table is built like ``raw.<source>`` beside it, so it can be renamed into place;
    ``keys`` holds the hashes of the keys staged so far."""
    con.execute("CREATE SCHEMA IF NOT EXISTS raw_loading")
    staging = {
        "data": f"raw.{src.name}__loading",
        "quarantine": f"raw_loading.{src.name}_quarantine",
        "files": f"raw_loading.{src.name}_files",
        "keys": f"raw_loading.{src.name}_keys",
    }
    con.execute(f"CREATE OR REPLACE TABLE {staging['data']} ({_data_columns(src)})")
    for name, target in (("quarantine", "raw.quarantine"), ("files", "raw.load_files")):
        con.execute(f"CREATE OR REPLACE TABLE {staging[name]} AS FROM {target} LIMIT 0")
    con.execute(f"CREATE OR REPLACE TABLE {staging['keys']} (key_hash UBIGINT)")
    return staging


EMPTY_LINES = pa.schema([
    ("file_idx", pa.int32()), ("line_number", pa.int64()),
    ("text", pa.large_string()), ("raw", pa.large_binary()),
])  # fmt: skip


def _load_chunk(
    con, src: Source, chunk, loaded_at: datetime, start: date, end: date, staging: dict[str, str]
) -> list[FileReport]:
    """Validate a chunk of files in one query and stage its rows, quarantine and file log."""
    entries, tables, reports = [], [], []
    for idx, f in chunk:
        entry, table, rep = _file_entry(src, idx, f)
        entries.append(entry)
        reports.append(rep)
        if table is not None:
            tables.append(table)
    con.register("lines", pa.concat_tables(tables) if tables else EMPTY_LINES.empty_table())
    con.register("files", _files_table(src, entries))
    try:
        # the chunk's working set: Arrow tables, released when the chunk ends
        con.register("batch", con.sql(batch_sql(src)).to_arrow_table())
        _stage_rows(con, src, loaded_at, start, end, staging)
        _log_files(con, src, chunk, reports, loaded_at, staging)
    finally:
        with contextlib.suppress(duckdb.Error):  # an aborted transaction refuses; re-registered
            for name in ("lines", "files", "batch", "judged", "file_log"):
                con.unregister(name)
    return reports


def _stage_rows(
    con, src: Source, loaded_at: datetime, start: date, end: date, staging: dict[str, str]
) -> None:
    """The batch's accepted rows into the staged data, its refused ones and the conflicting
    duplicates into the staged quarantine; ``judged`` keeps each duplicate's verdict."""
    # an earlier chunk's rows are read only if it staged one of this chunk's keys: a
    # probe of the staged key hashes instead of every staged row, chunk after chunk
    key = ", ".join(ident(k) for k in src.version_key)
    valid_keys = f"SELECT hash({key}) AS key_hash FROM batch WHERE reason IS NULL"
    seen = con.execute(
        f"SELECT count(*) FROM {staging['keys']} SEMI JOIN ({valid_keys}) USING (key_hash)"
    ).fetchall()[0][0]
    judge = _judge_sql(src, start, end, staging["data"] if seen else None)
    con.register("judged", con.sql(judge).to_arrow_table())
    con.execute(f"INSERT INTO {staging['keys']} {valid_keys}")
    bcols = ", ".join(f"b.{ident(c)}" for c in src.names + src.kept_raw)
    con.execute(
        f"""INSERT INTO {staging["data"]}
        SELECT {bcols}, b.extra, b.partition_date, f.file_name, b.line_number, $at
        FROM batch b JOIN files f USING (file_idx)
        ANTI JOIN (SELECT file_idx, line_number FROM judged WHERE _verdict <> 'accepted')
             USING (file_idx, line_number)
        WHERE b.reason IS NULL""",
        {"at": loaded_at},
    )
    con.execute(
        f"""INSERT INTO {staging["quarantine"]}
        SELECT $src, f.file_name, b.line_number, b.reason, b.detail, b.raw_record,
               b.partition_date, $at
        FROM batch b JOIN files f USING (file_idx) WHERE b.reason IS NOT NULL
        UNION ALL
        SELECT $src, f.file_name, j.line_number, 'duplicate key with conflicting content',
               j._first_seen, coalesce(l.text, l.raw::VARCHAR), f.partition_date, $at
        FROM judged j JOIN lines l USING (file_idx, line_number)
        JOIN files f ON f.file_idx = j.file_idx WHERE j._verdict = 'conflict'
        """,
        {"src": src.name, "at": loaded_at},
    )


def _log_files(
    con, src: Source, chunk, reports: list[FileReport], loaded_at: datetime,
    staging: dict[str, str],
) -> None:  # fmt: skip
    """Each file's counts into its report and, in one insert, into the staged file log."""
    counts = {
        row[0]: row[1:]
        for row in con.execute("""
        SELECT b.file_idx, count(*),
               count(*) FILTER (WHERE b.reason IS NULL
                                AND coalesce(j._verdict, 'accepted') = 'accepted'),
               count(*) FILTER (WHERE b.reason IS NOT NULL OR j._verdict = 'conflict'),
               count(*) FILTER (WHERE j._verdict = 'duplicate'),
               list_distinct(flatten(list(json_keys(b.extra)) FILTER (b.extra IS NOT NULL)))
        FROM batch b LEFT JOIN judged j USING (file_idx, line_number) GROUP BY b.file_idx
    """).fetchall()
    }
    log = []
    for (idx, f), rep in zip(chunk, reports, strict=True):
        read, accepted, quarantined, dupes, extra = counts.get(idx, (0, 0, 0, 0, []))
        rep.rows_read, rep.rows_accepted = read, accepted
        rep.rows_quarantined, rep.duplicates_dropped = quarantined, dupes
        rep.extra_columns = sorted(set(rep.extra_columns) | set(extra or []))
        log.append({
            "source": src.name, "file": f.name, "partition_date": f.day,
            "file_size": f.size, "file_mtime_ns": f.mtime_ns,
            "rows_read": read, "rows_accepted": accepted, "rows_quarantined": quarantined,
            "duplicates_dropped": dupes, "blank_lines": rep.blank_lines,
            "extra_columns": rep.extra_columns, "note": rep.note, "loaded_at": loaded_at,
        })  # fmt: skip
    # one insert for the chunk's files (executemany inserts row by row)
    con.register("file_log", pa.Table.from_pylist(log, schema=FILE_LOG))
    con.execute(f"INSERT INTO {staging['files']} BY NAME FROM file_log")
