"""Which landing days are not loaded yet: files on disk (name, size, mtime) compared with what
``raw.load_files`` recorded, so a new or re-delivered file is loaded again."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

from ingest.landing import discover
from ingest.spec import sources


def pending_ranges(landing: Path, warehouse: Path, as_of: datetime) -> list[tuple[date, date]]:
    """Contiguous day ranges with landing files not loaded yet (complete days before as_of)."""
    on_disk: dict[date, set] = {}
    for source in sources():
        for f in discover(landing, source)[0]:
            if f.day + timedelta(days=1) <= as_of.date():
                on_disk.setdefault(f.day, set()).add((f.name, f.size, f.mtime_ns))
    loaded: dict[date, set] = {}
    if warehouse.exists():
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            rows = con.execute(
                "SELECT partition_date, file, file_size, file_mtime_ns FROM raw.load_files"
            ).fetchall()
        except duckdb.CatalogException:
            rows = []
        con.close()
        for day, name, size, mtime in rows:
            loaded.setdefault(day, set()).add((name, size, mtime))
    days = sorted(d for d, files in on_disk.items() if files != loaded.get(d, set()))
    ranges: list[tuple[date, date]] = []
    for d in days:
        if ranges and ranges[-1][1] + timedelta(days=1) == d:
            ranges[-1] = (ranges[-1][0], d)
        else:
            ranges.append((d, d))
    return ranges
