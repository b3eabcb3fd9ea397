"""GSM-7 / UCS-2 detection and segment counts: hand-derived values, and the set-based SQL
agrees with the Python reference on the same strings."""

import duckdb
import pytest

from send_jobs.encoding import message_info, sql_columns, sql_segments

CASES = [
    ("hello", ("GSM-7", 5, 1)),
    ("a" * 160, ("GSM-7", 160, 1)),  # a full single GSM segment
    ("a" * 161, ("GSM-7", 161, 2)),  # 161 septets: 2 x 153
    ("a" * 306, ("GSM-7", 306, 2)),
    ("a" * 307, ("GSM-7", 307, 3)),
    ("€" * 80, ("GSM-7", 160, 1)),  # extension characters take 2 septets
    ("{" * 81, ("GSM-7", 162, 2)),
    ("[]~|^\\", ("GSM-7", 12, 1)),
    ("Ça coûte 5€", ("UCS-2", 11, 1)),  # û is not in GSM 03.38: the whole message is UCS-2
    ("Noël à Paris", ("UCS-2", 12, 1)),  # ë is outside GSM 03.38 ('à' is inside)
    ("Noel à Paris", ("GSM-7", 12, 1)),
    ("ł" * 70, ("UCS-2", 70, 1)),
    ("ł" * 71, ("UCS-2", 71, 2)),  # 2 x 67
    ("ł" * 135, ("UCS-2", 135, 3)),
    ("🌸" * 35, ("UCS-2", 70, 1)),  # an emoji is a surrogate pair: 2 units
    ("Mia 🌸", ("UCS-2", 6, 1)),
    ("line\nbreak", ("GSM-7", 10, 1)),
    ('it\'s "quoted"', ("GSM-7", 13, 1)),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_known_strings(text, expected):
    assert message_info(text) == expected


def test_sql_matches_the_reference():
    con = duckdb.connect()
    texts = [t for t, _ in CASES] + ["Łukasz", "Zoë", "Jürgen", "Ñandú", "x" * 400 + "€"]
    con.execute("CREATE TABLE t (text VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?)", [[t] for t in texts])
    rows = con.execute(
        f"SELECT text, encoding, units, {sql_segments()} "
        f"FROM (SELECT text, {sql_columns('text')} FROM t)"
    ).fetchall()
    assert len(rows) == len(texts)
    for text, enc, units, segments in rows:
        assert (enc, units, segments) == message_info(text), text
