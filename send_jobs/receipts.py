"""Load the receiver's and the link service's journal lines into the warehouse (receipts,
replies, clicks) and move message statuses.

Each file is read from where the last load stopped (``sends.gateway_files``), up to its last
complete line; lines in = receipts/replies accepted + duplicates + quarantined
(``sends.gateway_quarantine`` with a reason). Receipts are keyed by (message, DLR type),
replies and clicks by their id, so replayed callbacks and re-runs load nothing twice. Parsing is
set-based in DuckDB.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from send_jobs import answers
from send_jobs.ledger import DLR_STATUS, advance, ensure_schema
from send_jobs.links import UA_CLASSES

KINDS = ("receipts", "replies", "clicks")


def ingest(con, root: Path) -> dict[str, int]:
    """Load new journal lines under ``root`` (``<landing>/gateway``); returns counts."""
    ensure_schema(con)
    counts = {"lines": 0, "receipts": 0, "replies": 0, "clicks": 0, "duplicates": 0,
              "quarantined": 0, "status_changes": 0, "answers_recorded": 0,
              "answers_queued": 0}  # fmt: skip
    for kind in KINDS:
        for path in sorted((Path(root) / kind).glob("*.jsonl")):
            _ingest_file(con, kind, path, counts)
    return counts


def _ingest_file(con, kind: str, path: Path, counts: dict[str, int]) -> None:
    name = str(path)
    row = con.execute(
        "SELECT bytes_read, lines_read FROM sends.gateway_files WHERE file = ?", [name]
    ).fetchone()
    offset, lines_before = row if row else (0, 0)
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1  # a line still being written waits for the next load
    if end == 0:
        return
    chunk = data[:end].decode("utf-8", errors="replace")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as tmp:
        tmp.write(chunk)
    try:
        con.execute("BEGIN")
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _lines AS
            SELECT unnest(l) AS raw, unnest(generate_series(?, ? + len(l) - 1)) AS line
            FROM (SELECT list_filter(string_split(content, chr(10)), lambda x: x <> '') AS l
                  FROM read_text(?))""",
            [lines_before + 1, lines_before + 1, tmp.name],
        )
        n = con.execute("SELECT count(*) FROM _lines").fetchone()[0]
        counts["lines"] += n
        LOADERS[kind](con, name, counts)
        con.execute(
            """INSERT OR REPLACE INTO sends.gateway_files VALUES (?, ?, ?)""",
            [name, offset + len(data[:end]), lines_before + n],
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        Path(tmp.name).unlink(missing_ok=True)


def _quarantine(con, name: str, counts) -> None:
    """Lines of _parsed with a problem go to sends.gateway_quarantine with it as the reason."""
    q = con.execute(
        """INSERT INTO sends.gateway_quarantine
        SELECT ?, line, problem, raw FROM _parsed WHERE problem IS NOT NULL""",
        [name],
    ).fetchone()
    counts["quarantined"] += q[0] if q else 0


def _receipts(con, name: str, counts) -> None:
    status = " ".join(f"WHEN {k} THEN '{v}'" for k, v in DLR_STATUS.items())
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _parsed AS
        SELECT line, raw, json_valid(raw) AS ok,
            CASE WHEN json_valid(raw) THEN json_extract_string(raw, '$.id') END AS message_id,
            CASE WHEN json_valid(raw) THEN TRY_CAST(json_extract_string(raw, '$.dlr') AS INTEGER)
                 END AS dlr,
            CASE WHEN json_valid(raw) THEN json_extract_string(raw, '$.reply') END AS reply,
            CASE WHEN json_valid(raw) THEN json_extract_string(raw, '$.at') END AS reported_at,
            CASE WHEN json_valid(raw) THEN TRY_CAST(
                replace(json_extract_string(raw, '$.received_at'), 'Z', '') AS TIMESTAMP)
                 END AS received_at
        FROM _lines"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _parsed AS
        SELECT p.*, CASE p.dlr {status} END AS status,
            CASE WHEN NOT p.ok THEN 'not a JSON object'
                 WHEN p.message_id IS NULL OR p.dlr IS NULL OR p.received_at IS NULL
                     THEN 'missing id, dlr or received_at'
                 WHEN (CASE p.dlr {status} END) IS NULL THEN 'unknown DLR type'
                 WHEN m.message_id IS NULL THEN 'unknown message id'
                 END AS problem
        FROM _parsed AS p LEFT JOIN sends.messages AS m ON m.message_id = p.message_id"""
    )
    _quarantine(con, name, counts)
    added = con.execute(
        """INSERT OR IGNORE INTO sends.receipts
        SELECT message_id, dlr, status, reply, reported_at, received_at, ?, line
        FROM _parsed WHERE problem IS NULL
        QUALIFY row_number() OVER (PARTITION BY message_id, dlr ORDER BY line) = 1""",
        [name],
    ).fetchone()[0]
    good = con.execute("SELECT count(*) FROM _parsed WHERE problem IS NULL").fetchone()[0]
    counts["receipts"] += added
    counts["duplicates"] += good - added
    counts["status_changes"] += advance(
        con,
        """SELECT message_id, status,
               'DLR ' || dlr || coalesce(': ' || nullif(reply, ''), '') AS detail
           FROM _parsed WHERE problem IS NULL""",
        "gateway receipt",
    )


def _replies(con, name: str, counts) -> None:
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _parsed AS
        SELECT line, raw, j IS NOT NULL AS ok,
            j->>'inbound_id' AS id, j->>'from' AS phone, j->>'sender_raw' AS sender_raw,
            j->>'text' AS text, j->>'intent' AS intent, j->>'action' AS action,
            TRY_CAST(j->'flagged' AS BOOLEAN) AS flagged, j->>'rule' AS rule,
            j->>'problem' AS reported_problem,
            TRY_CAST(replace(j->>'received_at', 'Z', '') AS TIMESTAMP) AS received_at
        FROM (SELECT line, raw, CASE WHEN json_valid(raw) THEN CAST(raw AS JSON) END AS j
              FROM _lines)"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _parsed AS
        SELECT *, CASE WHEN NOT ok THEN 'not a JSON object'
                 WHEN reported_problem IS NOT NULL THEN reported_problem
                 WHEN id IS NULL OR phone IS NULL OR intent IS NULL OR received_at IS NULL
                     THEN 'missing inbound_id, from, intent or received_at'
                 WHEN action IS NOT NULL AND action NOT IN ('opt_out', 'opt_in')
                     THEN 'unknown consent action'
                 END AS problem
        FROM _parsed"""
    )
    _quarantine(con, name, counts)
    # the reply takes effect when the receiver got it (Kannel's own time has no zone)
    added = con.execute(
        """INSERT OR IGNORE INTO sends.inbound BY NAME
        SELECT id AS inbound_id, phone AS phone_e164, text, intent, action,
            coalesce(flagged, false) AS flagged, received_at AS occurred_at, received_at,
            ? AS file, line, sender_raw, rule
        FROM _parsed WHERE problem IS NULL
        QUALIFY row_number() OVER (PARTITION BY id ORDER BY line) = 1""",
        [name],
    ).fetchone()[0]
    good = con.execute("SELECT count(*) FROM _parsed WHERE problem IS NULL").fetchone()[0]
    counts["replies"] += added
    counts["duplicates"] += good - added
    for key, n in answers.match_replies(
        con, "(SELECT id AS inbound_id FROM _parsed WHERE problem IS NULL)"
    ).items():
        counts[key] += n


def _clicks(con, name: str, counts) -> None:
    """Clicks the link service journaled: each must name a message we sent under its own
    code; one click id is loaded once."""
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _parsed AS
        SELECT line, raw, j IS NOT NULL AS ok, j->>'click_id' AS click_id, j->>'code' AS code,
            j->>'message_id' AS message_id, j->>'ua_class' AS ua_class,
            TRY_CAST(replace(j->>'received_at', 'Z', '') AS TIMESTAMP) AS clicked_at
        FROM (SELECT line, raw, CASE WHEN json_valid(raw) THEN CAST(raw AS JSON) END AS j
              FROM _lines)"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _parsed AS
        SELECT p.*, m.customer_id, m.campaign_id,
            CASE WHEN NOT p.ok THEN 'not a JSON object'
                 WHEN p.click_id IS NULL OR p.code IS NULL OR p.message_id IS NULL
                      OR p.clicked_at IS NULL
                     THEN 'missing click_id, code, message_id or received_at'
                 WHEN coalesce(p.ua_class, '') NOT IN {UA_CLASSES} THEN 'unknown ua_class'
                 WHEN m.message_id IS NULL THEN 'unknown message id'
                 WHEN m.link_code IS DISTINCT FROM p.code THEN 'code is not the message''s link'
                 END AS problem
        FROM _parsed AS p LEFT JOIN sends.messages AS m ON m.message_id = p.message_id"""
    )
    _quarantine(con, name, counts)
    added = con.execute(
        """INSERT OR IGNORE INTO sends.clicks
        SELECT click_id, code, message_id, campaign_id, customer_id, ua_class, clicked_at,
            now()::TIMESTAMP, ?, line
        FROM _parsed WHERE problem IS NULL
        QUALIFY row_number() OVER (PARTITION BY click_id ORDER BY line) = 1""",
        [name],
    ).fetchone()[0]
    good = con.execute("SELECT count(*) FROM _parsed WHERE problem IS NULL").fetchone()[0]
    counts["clicks"] += added
    counts["duplicates"] += good - added


LOADERS = {"receipts": _receipts, "replies": _replies, "clicks": _clicks}
