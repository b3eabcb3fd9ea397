"""Hand queued messages to a gateway, at most once each.

Per delivery (``as_of``):
1. Resolve messages left ``submitting`` by an interrupted delivery: an outbox batch whose
   manifest exists was written (submitted), else the message is queued again; for Kannel the
   sender's journal answers first, a receipt proves a send, and a message with neither is
   queued again once the gateway's grace period (Kannel: 120 s) has passed since it was
   handed over; until then it waits (``awaiting_receipt``). A message handed to Kannel with
   no final receipt after 72 h becomes ``unconfirmed``.
2. In chunks, each at its moment of hand-over (a clock passed in by the caller): load the
   receiver's journal, then re-check every queued message: older than the program's validity
   -> expired; consent for its category withdrawn (a STOP since it was queued) -> cancelled;
   the recipient's window closed now or before the chunk would be through -> stays queued
   for a later run.
3. Mark the chunk ``submitting`` under the batch id (committed), hand it to the gateway, and
   record each answer: submitted, rejected (final), retry (queued again) or unknown (left
   submitting for step 1 of the next delivery).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from send_jobs import receipts
from send_jobs.campaign_specs import Program
from send_jobs.consent import consent_sql
from send_jobs.decide import load_rules, window_check
from send_jobs.ledger import advance, ensure_schema

Clock = Callable[[], datetime]  # the moment of hand-over, passed in by the caller


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
    con,
    program: Program,
    as_of: datetime,
    gateway,
    *,
    limit: int | None = None,
    clock: Clock | None = None,
    replies: Path | None = None,
    chunk_size: int = 5_000,
) -> Delivery:
    """Hand the queued messages to ``gateway`` in chunks. ``clock`` gives the moment of each
    chunk's hand-over (default: ``as_of``, for replays and simulations; live callers pass the
    wall clock): expiry, consent and the recipient's window are judged then, after loading the
    receiver's journal under ``replies`` (a STOP that came in a second ago counts), and the
    window must still be open when the chunk's last message is due to leave."""
    ensure_schema(con)
    con.execute("SET TimeZone = 'UTC'")
    load_rules(con)
    clock = clock or (lambda: as_of)
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
    con.execute("COMMIT")
    con.execute("CREATE OR REPLACE TEMP TABLE _tried (message_id VARCHAR)")
    result.counts["handed_over"] = 0
    result.seconds["prepare"] = time.perf_counter() - started
    budget = limit if limit else None
    while budget is None or budget > 0:
        size = min(chunk_size, budget) if budget is not None else chunk_size
        batch = _next_chunk(con, program, gateway, clock, replies, size, result)
        if batch.num_rows == 0:
            break
        _hand_over(con, gateway, batch, batch_id, result)
        if budget is not None:
            budget -= batch.num_rows
        if getattr(gateway, "unreachable", None) is not None and gateway.unreachable.is_set():
            break  # the rest stays queued for the next run
    return result


def _next_chunk(con, program: Program, gateway, clock: Clock, replies, size: int, result):
    """Judge every queued message at the hand-over moment; mark the next chunk submitting."""
    started = time.perf_counter()
    if replies is not None:
        loaded = receipts.ingest(con, replies)
        result.counts["replies_loaded"] = result.counts.get("replies_loaded", 0) + loaded["replies"]
    at = clock().astimezone(UTC).replace(tzinfo=None)
    until = at + timedelta(seconds=size / gateway.rate_per_s) if gateway.rate_per_s else at
    params = {"as_of": at, "until": until}
    con.execute("BEGIN")
    con.execute(
        """CREATE OR REPLACE TEMP TABLE cand AS SELECT message_id, customer_id, phone_e164,
            category, country, region, time_zone, as_of AS queued_as_of
        FROM sends.messages WHERE status = 'queued' AND as_of <= $as_of
          AND message_id NOT IN (SELECT message_id FROM _tried)""",
        {"as_of": at},
    )
    window_cols, window_joins = window_check(con, "cand", params, until="$until")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _check AS
        WITH consent AS ({consent_sql("cand", "$as_of")})
        SELECT c.message_id, {window_cols},
            c.queued_as_of <= $as_of - INTERVAL {program.message_validity_hours} HOUR
                AS is_expired,
            coalesce(k.action, 'never') <> 'opt_in' AS no_consent
        FROM cand AS c
        LEFT JOIN consent AS k ON k.customer_id = c.customer_id AND k.category = c.category
        {window_joins}""",
        {"as_of": at},
    )
    _count(result, "expired", advance(
        con,
        f"""SELECT message_id, 'expired' AS status, 'not sent within
            {program.message_validity_hours} h' AS detail FROM _check WHERE is_expired""",
        "delivery",
    ))  # fmt: skip
    _count(result, "cancelled", advance(
        con,
        """SELECT message_id, 'cancelled' AS status,
            'consent withdrawn before it went out' AS detail
           FROM _check WHERE no_consent AND NOT is_expired""",
        "delivery",
    ))  # fmt: skip
    result.counts["waiting_for_window"] = con.execute(
        "SELECT count(*) FROM _check WHERE NOT is_expired AND NOT no_consent AND NOT window_open"
    ).fetchone()[0]
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _batch AS
        SELECT m.message_id, m.phone_e164, m.text, m.encoding
        FROM sends.messages AS m JOIN _check AS c USING (message_id)
        WHERE m.status = 'queued' AND c.window_open
        ORDER BY m.as_of, m.message_id LIMIT {int(size)}"""
    )
    con.execute("INSERT INTO _tried SELECT message_id FROM _batch")
    con.execute(f"""UPDATE sends.messages SET status = 'submitting', batch_id = '{result.batch_id}',
            gateway = '{gateway.name}', attempts = attempts + 1, status_at = now()::TIMESTAMP
        WHERE message_id IN (SELECT message_id FROM _batch)""")
    con.execute(f"""INSERT INTO sends.message_events SELECT message_id, 'submitting',
        now()::TIMESTAMP, 'delivery', 'batch {result.batch_id} at ' || $at FROM _batch""",
        {"at": f"{at:%Y-%m-%dT%H:%M:%SZ}"})  # fmt: skip
    batch = con.sql("SELECT * FROM _batch").to_arrow_table()
    con.execute("COMMIT")  # from here a crash leaves them submitting, resolved next time
    result.seconds["prepare"] = result.seconds.get("prepare", 0.0) + time.perf_counter() - started
    return batch


def _hand_over(con, gateway, batch, batch_id: str, result: Delivery) -> None:
    _count(result, "handed_over", batch.num_rows)
    started = time.perf_counter()
    answers = gateway.submit(batch, batch_id)
    result.seconds["gateway"] = result.seconds.get("gateway", 0.0) + time.perf_counter() - started
    started = time.perf_counter()
    con.execute("BEGIN")
    _record(con, [(batch_id, *a) for a in answers])
    con.execute("COMMIT")
    result.seconds["record"] = result.seconds.get("record", 0.0) + time.perf_counter() - started
    for _, outcome, _ in answers:
        _count(result, outcome, 1)


def _count(result: Delivery, key: str, n: int) -> None:
    result.counts[key] = result.counts.get(key, 0) + n
