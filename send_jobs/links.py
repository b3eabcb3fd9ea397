"""Tracked short links: one code per message, its destination, and the registry the link
service (``send_jobs.link_service``) resolves codes from.

A message's code is the keyed hash of its idempotency key (SHA-256 of a secret kept in the
warehouse, ``sends.link_secret``, and the key): its first 64 bits in 11 base-62 digits
(letters and digits only: ``_`` and ``-`` are GSM-7 characters some carriers turn into other
ones), so with ten million live codes a guess finds one with odds of about one in
2 x 10^12, and a repeated decision renders the same text. The destination is the
campaign's ``link`` (or the program's ``link_destination``) with UTM parameters naming the
campaign and variant.

A code is registered before its message is handed over: ``register`` writes the chunk's
codes as one JSON-lines file per chunk under ``<links>/<UTC date>/``, written to a temporary
name, fsynced and renamed, so the service never reads half a file and a handed-over message's
link always resolves.
"""

from __future__ import annotations

import os
import re
import secrets
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from send_jobs.gateways import fsync_dir

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CODE_LENGTH = 11  # base-62 digits of a 64-bit number
CODE = re.compile(rf"^[0-9A-Za-z]{{{CODE_LENGTH}}}$")
UTM = {"utm_source": "retentext", "utm_medium": "sms"}
# who opened a link (send_jobs.link_service.user_agent_class): only people count as clicks
UA_CLASSES = ("preview", "mobile", "desktop", "unknown")

SECRET_DDL = "CREATE TABLE IF NOT EXISTS sends.link_secret (secret VARCHAR NOT NULL)"


def destination(url: str, campaign_id: str, variant_id: str) -> str:
    """``url`` with UTM source, medium, campaign and content (the variant); parameters the
    shop already put in the URL are kept as they are."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {k for k, _ in query}
    utm = {**UTM, "utm_campaign": campaign_id, "utm_content": variant_id}
    query += [(k, v) for k, v in utm.items() if k not in present]
    return urlunsplit(parts._replace(query=urlencode(query)))


def ensure_secret(con) -> None:
    """The warehouse's link secret, made once; it never leaves the warehouse."""
    con.execute(SECRET_DDL)
    con.execute(
        "INSERT INTO sends.link_secret SELECT ? WHERE NOT EXISTS (SELECT 1 FROM sends.link_secret)",
        [secrets.token_hex(32)],
    )


def code_number_sql(key_sql: str) -> str:
    """SQL for the first 64 bits of the keyed hash of the idempotency key ``key_sql``."""
    keyed = f"sha256((SELECT secret FROM sends.link_secret) || ':' || {key_sql})"
    return f"CAST('0x' || substr({keyed}, 1, 16) AS UBIGINT)"


def code_sql(number_sql: str) -> str:
    """SQL for the code of the column ``number_sql`` (``code_number_sql``): its 11 base-62
    digits, least significant first, as 0-9, A-Z, a-z (letters and digits only: GSM-7 and
    ASCII agree on them, and no link detector stops at one)."""
    digits = []
    for i in range(CODE_LENGTH):
        d = f"CAST(({number_sql} // {62**i}::UBIGINT) % 62 AS INTEGER)"
        digits.append(f"chr({d} + CASE WHEN {d} < 10 THEN 48 WHEN {d} < 36 THEN 55 ELSE 61 END)")
    return " || ".join(digits)


def register(con, folder: Path, chunk_id: str, at: datetime, message_ids: str) -> int:
    """Write the codes of the messages in the relation ``message_ids`` to the registry,
    durably, before they are handed over; returns how many."""
    day = folder / f"{at:%Y-%m-%d}"
    if not day.exists():
        day.mkdir(parents=True, exist_ok=True)
        fsync_dir(day.parent)
    final = day / f"{chunk_id}.jsonl"
    tmp = day / f".{chunk_id}.jsonl.tmp"
    rows = con.execute(
        f"""COPY (SELECT link_code AS code, message_id, campaign_id, link_url AS url
            FROM sends.messages WHERE link_code IS NOT NULL
              AND message_id IN (SELECT message_id FROM {message_ids})
            ORDER BY message_id) TO '{tmp}' (FORMAT JSON)"""
    ).fetchone()[0]
    _fsync(tmp)
    if rows == 0:
        tmp.unlink()
        return 0
    os.replace(tmp, final)
    fsync_dir(day)
    return rows


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
