"""Hand queued messages to a gateway, at most once each.

Per delivery (``as_of``):
1. Resolve messages left ``submitting`` by an interrupted delivery: an outbox batch whose
   manifest exists was written (submitted), else the message is queued again; for Kannel the
   sender's journal answers first, a receipt proves a send, and a message with neither is
   queued again once the gateway's grace period (Kannel: 120 s) has passed since it was
   handed over; until then it waits (``awaiting_receipt``). A message handed to Kannel with
   no final receipt after 72 h becomes ``unconfirmed``.
2. Re-check every queued message at as_of: older than the program's validity -> expired;
   consent for its category withdrawn (a STOP since it was queued) -> cancelled; outside the
   recipient's window -> stays queued for a later run.
3. Mark the rest ``submitting`` under a batch id (committed), hand them to the gateway, and
   record each answer: submitted, rejected (final), retry (queued again) or unknown (left
   submitting for step 1 of the next delivery).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from send_jobs.campaign_specs import Program
from send_jobs.decide import consent_sql, load_rules, window_sql
from send_jobs.ledger import advance, ensure_schema


@dataclass
class Delivery:
    batch_id: str
    gateway: str
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # prepare, gateway, record


def _requeue(con, where: str, detail: str) -> int:
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _requeue AS
        SELECT message_id FROM sends.messages WHERE status = 'submitting' AND ({where})""")
    con.execute(f"""INSERT INTO sends.message_events
        SELECT message_id, 'queued', now()::TIMESTAMP, 'delivery', '{detail}' FROM _requeue""")
    con.execute("""UPDATE sends.messages SET status = 'queued', status_at = now()::TIMESTAMP
        WHERE message_id IN (SELECT message_id FROM _requeue)""")
    return con.execute("SELECT count(*) FROM _requeue").fetchone()[0]


def resolve_interrupted(con, gateway) -> dict[str, int]:
    stuck = con.execute(
        "SELECT DISTINCT batch_id FROM sends.messages WHERE status = 'submitting' AND gateway = ?",
        [gateway.name],
    ).fetchall()
    if not stuck:
        return {}
    out = {"resolved_submitted": 0, "requeued": 0}
    if gateway.name == "outbox":
        done = [b for (b,) in stuck if gateway.completed(b)]
        if done:
            con.execute("CREATE OR REPLACE TEMP TABLE _done (batch_id VARCHAR)")
            con.executemany("INSERT INTO _done VALUES (?)", [[b] for b in done])
            out["resolved_submitted"] = advance(
                con,
                """SELECT message_id, 'submitted' AS status, 'outbox batch ' || batch_id
                   AS detail FROM sends.messages WHERE status = 'submitting'
                   AND batch_id IN (SELECT batch_id FROM _done)""",
                "delivery",
            )
    else:
        answers = [(b, *r) for b, r in gateway.journal([b for (b,) in stuck])]
        if answers:
            _record(con, answers)
            out["resolved_submitted"] = con.execute(
                "SELECT count(*) FROM _answers WHERE result = 'submitted'"
            ).fetchone()[0]
    # Kannel may hold a message whose answer we never got: its receipt proves the send. Only
    # after the grace period without one is it queued again (DLRs trail sends by seconds).
    grace = getattr(gateway, "unknown_grace_s", 0)
    out["requeued"] = _requeue(
        con,
        f"gateway = '{gateway.name}' AND message_id NOT IN (SELECT message_id FROM "
        f"sends.receipts) AND status_at <= now()::TIMESTAMP - INTERVAL {float(grace)} SECOND",
        "interrupted delivery: no answer and no receipt; queued again",
    )
    out["awaiting_receipt"] = con.execute(
        "SELECT count(*) FROM sends.messages WHERE status = 'submitting' AND gateway = ?",
        [gateway.name],
    ).fetchone()[0]
    return out


def _record(con, answers: list[tuple[str, str, str, str]]) -> None:
    """Apply gateway answers (batch_id, message_id, result, detail) to messages still
    submitting under that batch."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _answers (batch_id VARCHAR, message_id VARCHAR, "
        "result VARCHAR, detail VARCHAR)"
    )
    if answers:
        con.register("_answers_arrow", pa.table(list(zip(*answers, strict=True)),
                     names=["batch_id", "message_id", "result", "detail"]))  # fmt: skip
        con.execute("INSERT INTO _answers SELECT * FROM _answers_arrow")
        con.unregister("_answers_arrow")
    con.execute("""DELETE FROM _answers WHERE message_id NOT IN (
        SELECT message_id FROM sends.messages AS m
        WHERE m.status = 'submitting' AND m.batch_id = _answers.batch_id)""")
    advance(
        con,
        """SELECT message_id, result AS status, detail FROM _answers
           WHERE result IN ('submitted', 'rejected')""",
        "gateway",
    )
    con.execute("""UPDATE sends.messages AS m SET status = 'queued',
            status_at = now()::TIMESTAMP, last_error = a.detail
        FROM _answers AS a WHERE m.message_id = a.message_id AND a.result = 'retry'""")
    con.execute("""INSERT INTO sends.message_events
        SELECT message_id, 'queued', now()::TIMESTAMP, 'gateway', 'retry later: ' || detail
        FROM _answers WHERE result = 'retry'""")
    con.execute("""UPDATE sends.messages AS m SET last_error = 'unknown: ' || a.detail
        FROM _answers AS a WHERE m.message_id = a.message_id AND a.result = 'unknown'""")


def deliver(
    con, program: Program, as_of: datetime, gateway, *, limit: int | None = None
) -> Delivery:
    ensure_schema(con)
    con.execute("SET TimeZone = 'UTC'")
    load_rules(con)
    params = {"as_of": as_of.replace(tzinfo=None)}
    # unique across warehouses sharing a gateway's journal folder
    batch_id = f"{as_of:%Y%m%dT%H%M%SZ}-{gateway.name}-{uuid.uuid4().hex[:12]}"
    result = Delivery(batch_id, gateway.name)
    started = time.perf_counter()
    con.execute("BEGIN")
    result.counts.update(resolve_interrupted(con, gateway))
    if gateway.receipt_timeout_h:
        result.counts["unconfirmed"] = advance(
            con,
            f"""SELECT message_id, 'unconfirmed' AS status,
                'no final receipt within {gateway.receipt_timeout_h:g} h' AS detail
            FROM sends.messages WHERE gateway = '{gateway.name}'
              AND status IN ('submitted', 'accepted')
              AND status_at < now()::TIMESTAMP
                  - INTERVAL {int(gateway.receipt_timeout_h * 3600)} SECOND""",
            "delivery",
        )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE cand AS SELECT message_id, customer_id, phone_e164,
            category, country, region, time_zone, as_of AS queued_as_of
        FROM sends.messages WHERE status = 'queued' AND as_of <= $as_of""",
        params,
    )
    cols, joins = window_sql("c")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _check AS
        WITH consent AS ({consent_sql()})
        SELECT c.message_id, {cols},
            c.queued_as_of <= $as_of - INTERVAL {program.message_validity_hours} HOUR
                AS is_expired,
            coalesce(k.action, 'never') <> 'opt_in' AS no_consent
        FROM cand AS c
        LEFT JOIN consent AS k ON k.customer_id = c.customer_id AND k.category = c.category
        {joins}""",
        params,
    )
    result.counts["expired"] = advance(
        con,
        f"""SELECT message_id, 'expired' AS status, 'not sent within
            {program.message_validity_hours} h' AS detail FROM _check WHERE is_expired""",
        "delivery",
    )
    result.counts["cancelled"] = advance(
        con,
        """SELECT message_id, 'cancelled' AS status,
            'consent withdrawn before it went out' AS detail
           FROM _check WHERE no_consent AND NOT is_expired""",
        "delivery",
    )
    result.counts["waiting_for_window"] = con.execute(
        "SELECT count(*) FROM _check WHERE NOT is_expired AND NOT no_consent AND NOT window_open"
    ).fetchone()[0]
    top = f"LIMIT {int(limit)}" if limit else ""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _batch AS
        SELECT m.message_id, m.phone_e164, m.text, m.encoding
        FROM sends.messages AS m JOIN _check AS c USING (message_id)
        WHERE m.status = 'queued' AND c.window_open
        ORDER BY m.as_of, m.message_id {top}"""
    )
    con.execute(f"""UPDATE sends.messages SET status = 'submitting', batch_id = '{batch_id}',
            gateway = '{gateway.name}', attempts = attempts + 1, status_at = now()::TIMESTAMP
        WHERE message_id IN (SELECT message_id FROM _batch)""")
    con.execute(f"""INSERT INTO sends.message_events SELECT message_id, 'submitting',
        now()::TIMESTAMP, 'delivery', 'batch {batch_id}' FROM _batch""")
    batch = con.sql("SELECT * FROM _batch").to_arrow_table()
    con.execute("COMMIT")  # from here a crash leaves them submitting, resolved next time
    result.counts["handed_over"] = batch.num_rows
    result.seconds["prepare"] = time.perf_counter() - started
    if batch.num_rows == 0:
        return result
    started = time.perf_counter()
    answers = gateway.submit(batch, batch_id)
    result.seconds["gateway"] = time.perf_counter() - started
    started = time.perf_counter()
    con.execute("BEGIN")
    _record(con, [(batch_id, *a) for a in answers])
    con.execute("COMMIT")
    result.seconds["record"] = time.perf_counter() - started
    for _, outcome, _ in answers:
        result.counts[outcome] = result.counts.get(outcome, 0) + 1
    return result
