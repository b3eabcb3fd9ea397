"""Tracked short links: one code per message, its destination, and the registry the link
service (``send_jobs.link_service``) resolves codes from.

A message's code is the keyed hash of its idempotency key (SHA-256 of a secret kept in the
warehouse, ``sends.link_secret``, and the key): its first 64 bits in base64url, 11
characters, so with ten million live codes a guess finds one with odds of about one in
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

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"  # base64url
CODE_LENGTH = 11  # 64 bits
CODE = re.compile(rf"^[0-9A-Za-z_-]{{{CODE_LENGTH}}}$")
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


def code_sql(key_sql: str) -> str:
    """SQL for the code of the message with idempotency key ``key_sql``: the first 64 bits
    of the keyed hash in base64url without padding (11 characters)."""
    keyed = f"sha256((SELECT secret FROM sends.link_secret) || ':' || {key_sql})"
    return f"rtrim(translate(to_base64(unhex(substr({keyed}, 1, 16))), '+/', '-_'), '=')"


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
