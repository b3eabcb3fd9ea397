"""Landing files: discovery by source and day, and zero-copy splitting into lines.

Layout: ``<landing>/<source>/<YYYY-MM-DD>[.<part>].<csv|jsonl>``; the date in the name is the
file's partition. A file is read as bytes once; numpy finds the newlines and the lines become
an Arrow binary array over the same buffer, so DuckDB sees every physical line with its
number and raw bytes (bad UTF-8 included) without a Python loop over rows.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

FILE_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})((?:\.[A-Za-z0-9_-]+)*)\.(csv|jsonl)$")
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class LandingFile:
    path: Path
    name: str  # relative to the landing folder, e.g. orders/2025-01-03.csv
    day: date
    fmt: str
    size: int
    mtime_ns: int


def discover(landing: Path, source: str) -> tuple[list[LandingFile], list[Path]]:
    """All landing files of a source, sorted by (day, name), and the names that don't fit."""
    folder = Path(landing) / source
    found, strays = [], []
    if not folder.is_dir():
        return found, strays
    for path in sorted(folder.iterdir()):
        m = FILE_RE.match(path.name)
        if not path.is_file():
            continue
        try:
            day = date.fromisoformat(m.group(1)) if m else None
        except ValueError:
            day = None
        if day is None:
            strays.append(path)
            continue
        st = path.stat()
        found.append(
            LandingFile(path, f"{source}/{path.name}", day, m.group(3), st.st_size, st.st_mtime_ns)
        )
    found.sort(key=lambda f: (f.day, f.name))
    return found, strays


def split_lines(data: bytes) -> pa.LargeBinaryArray:
    """Physical lines (newline kept) over ``data``'s buffer, without copying it."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
    if not data:
        return pa.array([], pa.large_binary())
    arr = np.frombuffer(data, np.uint8)
    starts = np.concatenate([[0], np.flatnonzero(arr == 10) + 1]).astype(np.int64)
    if starts[-1] == len(data):  # the file ends with a newline: no empty last line
        starts = starts[:-1]
    offsets = np.append(starts, len(data)).astype(np.int64)
    lines = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(starts), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    return lines


def as_text(lines: pa.LargeBinaryArray) -> tuple[pa.LargeStringArray, pa.LargeBinaryArray]:
    """Lines as UTF-8 text without their terminator (null where a line is not valid UTF-8)
    and, for those lines only, their raw bytes. A clean file is validated by one Arrow cast;
    only a file that fails it is checked line by line."""
    try:
        text = lines.cast(pa.large_string())
        raw = pa.nulls(len(lines), pa.large_binary())
    except pa.ArrowInvalid:
        decoded, bad = [], []
        for line in lines.to_pylist():
            try:
                decoded.append(line.decode("utf-8"))
                bad.append(None)
            except UnicodeDecodeError:
                decoded.append(None)
                bad.append(line.rstrip(b"\r\n"))
        text, raw = pa.array(decoded, pa.large_string()), pa.array(bad, pa.large_binary())
    return pc.utf8_rtrim(text, characters="\r\n"), raw


def parse_header(first_line: bytes) -> list[str]:
    """Column names of a CSV header line; raises UnicodeDecodeError / csv.Error if unreadable."""
    text = first_line.decode("utf-8").rstrip("\r\n")
    return [name.strip() for name in next(csv.reader([text]))]
