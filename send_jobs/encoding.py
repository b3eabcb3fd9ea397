"""SMS encoding and segment counts (GSM 03.38 / 3GPP TS 23.038).

- GSM-7 when every character is in the basic set or its extension table; extension
  characters (``^ { } \\ [ ~ ] | €`` and form feed) take two septets (escape + char).
- Otherwise UCS-2: every character is one 16-bit unit, characters outside the Basic
  Multilingual Plane (most emoji) two (a UTF-16 surrogate pair).
- One segment holds 160 GSM-7 septets or 70 UCS-2 units; a multipart message carries a
  6-byte header per part, leaving 153 septets or 67 units per segment.

Segments are units / per-segment capacity, rounded up. Encoders that avoid splitting an escape
sequence or surrogate pair across parts can need one more segment in rare boundary cases;
the cost estimate does not model that.
"""

from __future__ import annotations

import math

GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = "^{}\\[~]|€\f"
_GSM = set(GSM_BASIC) | set(GSM_EXTENSION)
LIMITS = {"GSM-7": (160, 153), "UCS-2": (70, 67)}


def message_info(text: str) -> tuple[str, int, int]:
    """(encoding, length in septets or UTF-16 units, segments) of one message."""
    if all(ch in _GSM for ch in text):
        encoding = "GSM-7"
        units = len(text) + sum(ch in GSM_EXTENSION for ch in text)
    else:
        encoding = "UCS-2"
        units = len(text.encode("utf-16-le")) // 2
    single, multi = LIMITS[encoding]
    return encoding, units, (1 if units <= single else math.ceil(units / multi))


def _regex_class(chars: str) -> str:
    out = []
    for ch in chars:
        if ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "'":
            out.append("''")  # inside a SQL string literal
        elif ch.isascii() and not ch.isalnum():
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


_ALL = _regex_class(GSM_BASIC + GSM_EXTENSION)
_EXT = _regex_class(GSM_EXTENSION)


def sql_columns(text: str) -> str:
    """DuckDB select-list computing encoding and units from the ``text`` expression; the same
    rules as ``message_info``, set-based. Counts use "length minus length without the
    characters": removing a few characters is ~25x faster than keeping them."""
    is_gsm = f"regexp_full_match({text}, '[{_ALL}]*')"
    ext = f"length({text}) - length(regexp_replace({text}, '[{_EXT}]', '', 'g'))"
    astral = (
        f"length({text}) - length(regexp_replace({text}, '[\\x{{10000}}-\\x{{10FFFF}}]', '', 'g'))"
    )
    return f"""
        CASE WHEN {is_gsm} THEN 'GSM-7' ELSE 'UCS-2' END AS encoding,
        length({text}) + CASE WHEN {is_gsm} THEN {ext} ELSE {astral} END AS units"""


def sql_segments(encoding: str = "encoding", units: str = "units") -> str:
    return f"""CASE WHEN {encoding} = 'GSM-7'
            THEN CASE WHEN {units} <= 160 THEN 1 ELSE CAST(ceil({units} / 153) AS INTEGER) END
            ELSE CASE WHEN {units} <= 70 THEN 1 ELSE CAST(ceil({units} / 67) AS INTEGER) END END"""
