"""Which landing days are not loaded yet: files on disk (name, size, mtime) compared with what
``raw.load_files`` recorded, so a new or re-delivered file is loaded again. Also what the
warehouse has loaded so far, which sets the features' ``as_of``."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import duckdb

from ingest.landing import Stray, discover
from ingest.spec import sources
from warehouse.settings import PARTITIONS_START_ENV

FileState = tuple[str, int, int]  # name, size, mtime_ns


def files_on_disk(landing: Path, as_of: datetime) -> dict[date, set[FileState]]:
    """Landing files of complete days (the day ended by ``as_of``), by day."""
    on_disk: dict[date, set[FileState]] = {}
    for source in sources():
        for f in discover(landing, source)[0]:
            if f.day + timedelta(days=1) <= as_of.date():
                on_disk.setdefault(f.day, set()).add((f.name, f.size, f.mtime_ns))
    return on_disk


def stray_files(landing: Path) -> list[Stray]:
    """Files in a source's folder that are never loaded (a name that fits no pattern, a
    link, a path out of the landing folder), with the reason: reported, not skipped."""
    return [stray for source in sources() for stray in discover(landing, source)[1]]


def loaded_files(warehouse: Path) -> dict[date, set[FileState]]:
    """What ``raw.load_files`` recorded, by day; empty for a new warehouse. Raises
    ``duckdb.IOException`` while another process writes the file."""
    if not warehouse.exists():
        return {}
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            "SELECT partition_date, file, file_size, file_mtime_ns FROM raw.load_files"
        ).fetchall()
    except duckdb.CatalogException:
        rows = []
    finally:
        con.close()
    loaded: dict[date, set[FileState]] = {}
    for day, name, size, mtime in rows:
        loaded.setdefault(day, set()).add((name, size, mtime))
    return loaded


def pending_ranges(landing: Path, warehouse: Path, as_of: datetime) -> list[tuple[date, date]]:
    """Contiguous day ranges with landing files not loaded yet (complete days before as_of)."""
    on_disk, loaded = files_on_disk(landing, as_of), loaded_files(warehouse)
    days = sorted(d for d, files in on_disk.items() if files != loaded.get(d, set()))
    ranges: list[tuple[date, date]] = []
    for d in days:
        if ranges and ranges[-1][1] + timedelta(days=1) == d:
            ranges[-1] = (ranges[-1][0], d)
        else:
            ranges.append((d, d))
    return ranges


def ranges_to_load(
    landing: Path, warehouse: Path, as_of: datetime, first_partition: date
) -> list[tuple[date, date]]:
    """The pending day ranges; a missing landing folder or a file before the first partition
    is a clear error."""
    if not landing.is_dir():
        raise ValueError(
            f"landing folder {landing} does not exist; create it or run "
            "`retentext simulate --out DIR` first"
        )
    ranges = pending_ranges(landing, warehouse, as_of)
    if ranges and ranges[0][0] < first_partition:
        raise ValueError(
            f"landing has files dated {ranges[0][0]}, before the first partition "
            f"{first_partition}; set {PARTITIONS_START_ENV} to an earlier date"
        )
    return ranges


def range_fingerprint(landing: Path, start: date, end: date, as_of: datetime) -> str:
    """A digest of the files of ``start..end`` as they are now: the same files give the same
    digest, a re-delivered file a new one."""
    on_disk = files_on_disk(landing, as_of)
    files = sorted(f for day, fs in on_disk.items() if start <= day <= end for f in fs)
    return hashlib.sha256(repr(files).encode()).hexdigest()[:16]


def loaded_through(con) -> date | None:
    """The newest landing day loaded into the warehouse, or None before the first load."""
    try:
        return con.execute("SELECT max(partition_date) FROM raw.load_files").fetchone()[0]
    except duckdb.CatalogException:
        return None


def features_as_of(con) -> datetime | None:
    """The end of the newest loaded landing day: the time the features are built as of when
    nobody names one (the nightly chain in Dagster)."""
    day = loaded_through(con)
    if day is None:
        return None
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)
