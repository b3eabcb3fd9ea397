"""Landing files: discovery by source and day, and zero-copy splitting into lines.

Layout: ``<landing>/<source>/<day>[.<part>].<format>``. The day is ``YYYY-MM-DD`` or
``YYYYMMDD`` and is the file's partition; the format is ``csv``, ``jsonl`` (either may be
gzipped: ``.csv.gz``) or ``parquet``, in any letter case. A file is read as bytes once;
numpy finds the newlines and the lines become an Arrow binary array over the same buffer, so
DuckDB sees every physical line with its number and raw bytes (bad UTF-8 included) without a
Python loop over rows. A Parquet file's rows become JSON lines first (``parquet_as_jsonl``).

Files that cannot be loaded are never skipped without a word: a name that fits no pattern, a
symbolic link and anything resolving outside the landing folder come back as ``Stray`` with
the reason.
"""

from __future__ import annotations

import csv
import gzip
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

FILE_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2}|\d{8})((?:\.[A-Za-z0-9_-]+)*?)\.(csv|jsonl|parquet)(\.gz)?$",
    re.IGNORECASE,
)
BOM = b"\xef\xbb\xbf"
EXPECTED_NAME = "<YYYY-MM-DD or YYYYMMDD>[.<part>].<csv|jsonl|parquet>[.gz]"


@dataclass(frozen=True)
class LandingFile:
    path: Path
    name: str  # relative to the landing folder, e.g. orders/2025-01-03.csv
    day: date
    fmt: str  # csv, jsonl or parquet
    size: int
    mtime_ns: int
    gzipped: bool = False


@dataclass(frozen=True)
class Stray:
    name: str  # relative to the landing folder
    reason: str

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text if "-" in text else f"{text[:4]}-{text[4:6]}-{text[6:]}")
    except ValueError:
        return None


def _refusal(path: Path, root: Path) -> str | None:
    """Why a file in a source's folder is not read, or None."""
    if path.is_symlink():
        return "symbolic link: landing files must be regular files in the landing folder"
    if not path.resolve().is_relative_to(root):
        return "resolves outside the landing folder"
    if not path.is_file():
        return "not a regular file"
    m = FILE_RE.match(path.name)
    if m is None:
        return f"name does not fit {EXPECTED_NAME}"
    if m.group(3).lower() == "parquet" and m.group(4):
        return "a gzipped Parquet file: Parquet compresses itself, land it as .parquet"
    if _day(m.group(1)) is None:
        return f"{m.group(1)} is not a calendar day"
    return None


def discover(landing: Path, source: str) -> tuple[list[LandingFile], list[Stray]]:
    """All landing files of a source, sorted by (day, name), and the files that are refused."""
    root = Path(landing).resolve()
    folder = Path(landing) / source
    found: list[LandingFile] = []
    strays: list[Stray] = []
    if not folder.is_dir():
        return found, strays
    if folder.is_symlink() or not folder.resolve().is_relative_to(root):
        return found, [Stray(source, "the source's folder is a link out of the landing folder")]
    for path in sorted(folder.iterdir()):
        name = f"{source}/{path.name}"
        if path.is_dir() and not path.is_symlink():
            continue
        reason = _refusal(path, root)
        if reason:
            strays.append(Stray(name, reason))
            continue
        m = FILE_RE.match(path.name)
        st = path.stat()
        found.append(
            LandingFile(path, name, _day(m.group(1)), m.group(3).lower(), st.st_size,
                        st.st_mtime_ns, gzipped=bool(m.group(4)))
        )  # fmt: skip
    found.sort(key=lambda f: (f.day, f.name))
    return found, strays


def read_landing_file(f: LandingFile) -> tuple[bytes, str]:
    """The file's text bytes and the format they are in (``csv`` or ``jsonl``). Raises
    OSError (unreadable, not gzip) or ValueError (not Parquet)."""
    data = f.path.read_bytes()
    if f.gzipped:
        data = gzip.decompress(data)
    if f.fmt == "parquet":
        return parquet_as_jsonl(f.path), "jsonl"
    return data, f.fmt


def parquet_as_jsonl(path: Path) -> bytes:
    """A Parquet file's rows as JSON lines, one object per row with the columns as members.
    Typed values keep their meaning: a UTC timestamp gets its offset, a naive one stays
    naive (and is quarantined as such), nested columns become JSON."""
    con = duckdb.connect()
    try:  # a projection keeps the file's row order (DuckDB preserves insertion order)
        rows = con.sql(
            "SELECT to_json(t)::VARCHAR FROM read_parquet($p) AS t", params={"p": str(path)}
        )
        column = rows.to_arrow_table().column(0).combine_chunks().cast(pa.large_string())
    except duckdb.Error as exc:
        raise ValueError(f"not a readable Parquet file: {exc}") from exc
    finally:
        con.close()
    if not len(column):
        return b""
    newline = pa.scalar("\n", pa.large_string())
    lines = pc.binary_join_element_wise(column, pa.scalar("", pa.large_string()), newline)
    offsets = np.frombuffer(lines.buffers()[1], np.int64)[
        lines.offset : lines.offset + len(lines) + 1
    ]
    return lines.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]]


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
