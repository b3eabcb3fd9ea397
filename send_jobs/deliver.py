"""Hand queued messages to a gateway, at most once each.

Per delivery (``as_of``; every timer runs on the caller's hand-over clock):
1. Load the receiver's journal (a receipt that came in a moment ago proves its send), then
   resolve the messages every gateway left ``submitting`` in an interrupted delivery, from
   where each batch's gateway keeps its record (``sends.batches``): an outbox batch whose
   manifest exists was written; a Kannel message takes its journaled answer, and one whose
   intent was journaled without an answer may have reached Kannel (``unknown``). A message
   with no intent or manifest was never handed over and is queued again at once. An unknown
   one, once the grace period (Kannel: 120 s) since its own hand-over has passed without a
   receipt, is submitted if Kannel's access log shows it sent (its receipt was lost, e.g. with
   a killed smsbox), else queued again only when Kannel's ``status.xml`` says it holds no
   message (a carrier link that is down keeps them in its store); until then it waits
   (``awaiting_receipt``).
   A message handed over with no final receipt after 72 h becomes ``unconfirmed``, whichever
   gateway took it.
2. In chunks, each at its moment of hand-over: load the receiver's journal, then re-check
   every queued message: older than the program's validity -> expired; consent for its
   category withdrawn (a STOP since it was queued) -> cancelled; the recipient's window
   closed now or before the chunk would be through -> stays queued for a later run.
3. Mark the chunk ``submitting`` under the batch id (committed), hand it to the gateway, and
   record each answer with its moment of hand-over: submitted, rejected or refused (final),
   retry (queued again) or unknown (resolved by step 1 of a later delivery). A gateway that
   halts (unreachable, credentials refused, throttled, its journal failing) ends the
   delivery after its answers are recorded; the rest stays queued (``Delivery.halted``).
   A chunk's answers are recorded while the next chunk is in flight.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from send_jobs import receipts
from send_jobs.campaign_specs import Program
from send_jobs.consent import consent_sql
from send_jobs.decide import load_rules, window_check
from send_jobs.gateways import JOURNALS, Answer
from send_jobs.ledger import DLR_STATUS, advance, ensure_schema
from send_jobs.links import register as write_to_registry

Clock = Callable[[], datetime]  # the moment of hand-over, passed in by the caller
DEFAULT_RECEIPT_TIMEOUT_H = 72.0  # for messages of a gateway other than this delivery's


@dataclass
class Delivery:
    batch_id: str
    gateway: str
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # prepare, gateway, record
    halted: str | None = None  # why the gateway stopped handing over, if it did
    chunks: int = 0


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None)


def _requeue(con, where: str, detail: str) -> int:
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _requeue AS
        SELECT message_id FROM sends.messages WHERE status = 'submitting' AND ({where})""")
    con.execute(f"""INSERT INTO sends.message_events
        SELECT message_id, 'queued', now()::TIMESTAMP, 'delivery', '{detail}' FROM _requeue""")
    con.execute("""UPDATE sends.messages SET status = 'queued', status_at = now()::TIMESTAMP,
            handed_over_at = NULL
        WHERE message_id IN (SELECT message_id FROM _requeue)""")
    return con.execute("SELECT count(*) FROM _requeue").fetchone()[0]


def resolve_interrupted(con, gateway, at: datetime) -> dict[str, int]:
    """Settle every gateway's messages left ``submitting`` (step 1 of the module doc)."""
    stuck = con.execute("""SELECT m.gateway, any_value(b.location), list(DISTINCT m.batch_id)
        FROM sends.messages AS m LEFT JOIN sends.batches AS b USING (batch_id)
        WHERE m.status = 'submitting' GROUP BY m.gateway""").fetchall()
    if not stuck:
        return {}
    answers = []
    for name, location, batch_ids in stuck:
        location = location or (gateway.location if name == gateway.name else None)
        if name in JOURNALS and location:
            answers += [(b, *a) for b, a in JOURNALS[name](location, batch_ids)]
    _record(con, answers)
    out = {
        "resolved_submitted": con.execute(
            "SELECT count(*) FROM _answers WHERE result = 'submitted'").fetchone()[0],
        "requeued": _requeue(con, "handed_over_at IS NULL",
                             "interrupted delivery: never handed over; queued again"),
    }  # fmt: skip
    out["requeued"] += _requeue_unknown(con, gateway, at)
    out["awaiting_receipt"] = con.execute(
        "SELECT count(*) FROM sends.messages WHERE status = 'submitting'"
    ).fetchone()[0]
    return out


def _requeue_unknown(con, gateway, at: datetime) -> int:
    """Unknown answers of this gateway, past the grace since their own hand-over and without
    a receipt: those Kannel's access log shows it sent are submitted; the rest are queued
    again only if the gateway says it holds no message."""
    due = f"""gateway = '{gateway.name}' AND handed_over_at IS NOT NULL
        AND handed_over_at <= TIMESTAMP '{at:%Y-%m-%d %H:%M:%S.%f}'
            - INTERVAL {float(gateway.unknown_grace_s)} SECOND
        AND batch_id IN (SELECT batch_id FROM sends.batches WHERE location = '{gateway.location}')
        AND message_id NOT IN (SELECT message_id FROM sends.receipts)"""
    waiting = {m for (m,) in con.execute(
        f"SELECT message_id FROM sends.messages WHERE status = 'submitting' AND {due}"
    ).fetchall()}  # fmt: skip
    if not waiting:
        return 0
    sent = set(_from_kannel_record(con, gateway, waiting))
    if not waiting - sent:
        return 0
    holds = gateway.holds_messages() if hasattr(gateway, "holds_messages") else False
    if holds is not False:  # still in the gateway's store, or it cannot be asked: wait
        return 0
    return _requeue(con, due, "no answer, no receipt, not held by the gateway; queued again")


def _from_kannel_record(con, gateway, message_ids: set[str]) -> dict[str, int | None]:
    """Settle ``message_ids`` from Kannel's own record (its access log since their batches
    opened): one it shows sent is at least submitted, and a final receipt it shows is loaded
    as a receipt (a callback lost on the way, e.g. with a killed smsbox). Returns the record."""
    if not message_ids or not hasattr(gateway, "kannel_record"):
        return {}
    con.execute("CREATE OR REPLACE TEMP TABLE _ids (message_id VARCHAR)")
    con.executemany("INSERT INTO _ids VALUES (?)", [[m] for m in sorted(message_ids)])
    since = con.execute("""SELECT min(b.log_offset) FROM sends.messages AS m
        JOIN sends.batches AS b USING (batch_id) WHERE m.message_id IN (SELECT * FROM _ids)""")
    record = gateway.kannel_record(message_ids, since.fetchone()[0] or 0)
    if not record:
        return record
    con.execute("CREATE OR REPLACE TEMP TABLE _record (message_id VARCHAR, dlr INTEGER)")
    con.executemany("INSERT INTO _record VALUES (?, ?)", [[m, d] for m, d in record.items()])
    statuses = " ".join(f"WHEN {k} THEN '{v}'" for k, v in DLR_STATUS.items())
    con.execute(f"""INSERT OR IGNORE INTO sends.receipts
        SELECT message_id, dlr, CASE dlr {statuses} END, NULL, NULL, now()::TIMESTAMP,
            'kannel access log', 0 FROM _record WHERE dlr IS NOT NULL""")
    advance(con, """SELECT message_id, 'submitted' AS status,
        'no answer; Kannel''s access log shows it sent to the carrier' AS detail
        FROM _record""", "kannel access log")  # fmt: skip
    advance(con, f"""SELECT message_id, CASE dlr {statuses} END AS status,
        'DLR ' || dlr || ' (from Kannel''s access log)' AS detail
        FROM _record WHERE dlr IS NOT NULL""", "kannel access log")  # fmt: skip
    return record


def _recover_receipts(con, gateway, at: datetime) -> int:
    """Messages this gateway took more than the grace ago and still without a final receipt
    are looked up in Kannel's record; returns how many it settled."""
    if not hasattr(gateway, "kannel_record"):
        return 0
    pending = {m for (m,) in con.execute(f"""SELECT message_id FROM sends.messages
        WHERE gateway = '{gateway.name}' AND status IN ('submitted', 'accepted')
          AND handed_over_at <= TIMESTAMP '{at:%Y-%m-%d %H:%M:%S.%f}'
              - INTERVAL {float(gateway.unknown_grace_s)} SECOND
          AND batch_id IN (SELECT batch_id FROM sends.batches
                           WHERE location = '{gateway.location}')""").fetchall()}  # fmt: skip
    record = _from_kannel_record(con, gateway, pending)
    return sum(1 for d in record.values() if d is not None)


def _expire_unconfirmed(con, gateway, at: datetime) -> int:
    """Handed over (answered or not) and no final receipt within the timeout: unconfirmed."""
    hours = getattr(gateway, "receipt_timeout_h", None) or DEFAULT_RECEIPT_TIMEOUT_H
    return advance(
        con,
        f"""SELECT message_id, 'unconfirmed' AS status,
            'no final receipt within {hours:g} h' AS detail
        FROM sends.messages WHERE gateway <> 'outbox'
          AND (status IN ('submitted', 'accepted')
               OR (status = 'submitting' AND handed_over_at IS NOT NULL))
          AND coalesce(handed_over_at, status_at)
              < TIMESTAMP '{at:%Y-%m-%d %H:%M:%S.%f}' - INTERVAL {int(hours * 3600)} SECOND""",
        "delivery",
    )


def _record(con, answers: list[tuple]) -> None:
    """Apply gateway answers (batch_id, message_id, result, detail, handed_over_at) to
    messages still submitting under that batch."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _answers (batch_id VARCHAR, message_id VARCHAR, "
        "result VARCHAR, detail VARCHAR, handed_over_at TIMESTAMP)"
    )
    if answers:
        columns = list(zip(*answers, strict=True))
        columns[4] = [_utc(t) if t is not None else None for t in columns[4]]
        con.register(
            "_answers_arrow",
            pa.table(
                columns, names=["batch_id", "message_id", "result", "detail", "handed_over_at"]
            ),
        )
        con.execute("INSERT INTO _answers SELECT * FROM _answers_arrow")
        con.unregister("_answers_arrow")
    # the moment of hand-over is kept even when a receipt has already moved the message on
    con.execute("""UPDATE sends.messages AS m SET handed_over_at = a.handed_over_at
        FROM _answers AS a WHERE m.message_id = a.message_id AND m.batch_id = a.batch_id
          AND a.handed_over_at IS NOT NULL AND m.handed_over_at IS NULL
          AND a.result <> 'retry'""")
    con.execute("""DELETE FROM _answers WHERE message_id NOT IN (
        SELECT message_id FROM sends.messages AS m
        WHERE m.status = 'submitting' AND m.batch_id = _answers.batch_id)""")
    advance(
        con,
        """SELECT message_id, CASE result WHEN 'refused' THEN 'rejected' ELSE result END
               AS status, detail FROM _answers
           WHERE result IN ('submitted', 'rejected', 'refused')""",
        "gateway",
    )
    con.execute("""UPDATE sends.messages AS m SET recipient_failure = false
        FROM _answers AS a WHERE m.message_id = a.message_id AND a.result = 'refused'""")
    con.execute("""UPDATE sends.messages AS m SET status = 'queued',
            status_at = now()::TIMESTAMP, last_error = a.detail, handed_over_at = NULL
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
    links: Path | None = None,
    chunk_size: int = 5_000,
) -> Delivery:
    """Hand the queued messages to ``gateway`` in chunks. ``clock`` gives the moment of each
    chunk's hand-over (default: ``as_of``, for replays and simulations; live callers pass the
    wall clock): expiry, consent and the recipient's window are judged then, after loading the
    receiver's journal under ``replies`` (a STOP that came in a second ago counts), and the
    window must still be open when the chunk's last message is due to leave. With ``links``
    (the link registry folder), each chunk's tracked links are registered before it is handed
    over."""
    ensure_schema(con)
    con.execute("SET TimeZone = 'UTC'")
    load_rules(con)
    clock = clock or (lambda: as_of)
    # unique across warehouses sharing a gateway's journal folder
    batch_id = f"{as_of:%Y%m%dT%H%M%SZ}-{gateway.name}-{uuid.uuid4().hex[:12]}"
    result = Delivery(batch_id, gateway.name)
    started = time.perf_counter()
    if replies is not None:
        _load_landing(con, replies, result)
    at = _utc(clock())
    con.execute("BEGIN")
    result.counts.update(resolve_interrupted(con, gateway, at))
    if recovered := _recover_receipts(con, gateway, at):
        result.counts["receipts_from_kannel_log"] = recovered
    if unconfirmed := _expire_unconfirmed(con, gateway, at):
        result.counts["unconfirmed"] = unconfirmed
    con.execute("COMMIT")
    con.execute("CREATE OR REPLACE TEMP TABLE _tried (message_id VARCHAR)")
    result.counts["handed_over"] = 0
    result.seconds["prepare"] = time.perf_counter() - started
    budget = limit if limit else None
    unrecorded: list[Answer] = []
    # one chunk in flight while the main thread records the chunk before it; each chunk is
    # still judged right before its own hand-over
    with ThreadPoolExecutor(1, thread_name_prefix="hand-over") as courier:
        while budget is None or budget > 0:
            size = min(chunk_size, budget) if budget is not None else chunk_size
            batch = _next_chunk(con, program, gateway, clock, (replies, links), size, result)
            if batch.num_rows == 0:
                break
            _count(result, "handed_over", batch.num_rows)
            in_flight = courier.submit(_hand_over, gateway, batch, batch_id, result, clock)
            _record_answers(con, batch_id, unrecorded, result)
            unrecorded = in_flight.result()
            if budget is not None:
                budget -= batch.num_rows
            if gateway.halted:  # the rest stays queued for the next run
                result.halted = gateway.halted
                break
    _record_answers(con, batch_id, unrecorded, result)
    return result


def _load_landing(con, replies: Path, result: Delivery) -> None:
    loaded = receipts.ingest(con, replies)
    result.counts["replies_loaded"] = result.counts.get("replies_loaded", 0) + loaded["replies"]


def _next_chunk(con, program: Program, gateway, clock: Clock, folders, size: int, result):
    """Judge every queued message at the hand-over moment; register the next chunk's links
    (``folders``: the receiver's journal and the link registry, either may be None) and mark
    the chunk submitting."""
    started = time.perf_counter()
    replies, links_folder = folders
    if replies is not None:
        _load_landing(con, replies, result)
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
    if links_folder is not None:
        _register_links(con, links_folder, result, at)
    log_at = gateway.log_position() if hasattr(gateway, "log_position") else None
    con.execute(
        "INSERT OR IGNORE INTO sends.batches VALUES (?, ?, ?, ?, ?)",
        [result.batch_id, gateway.name, gateway.location, at, log_at],
    )
    con.execute(f"""UPDATE sends.messages SET status = 'submitting', batch_id = '{result.batch_id}',
            gateway = '{gateway.name}', attempts = attempts + 1, status_at = now()::TIMESTAMP,
            handed_over_at = NULL
        WHERE message_id IN (SELECT message_id FROM _batch)""")
    con.execute(f"""INSERT INTO sends.message_events SELECT message_id, 'submitting',
        now()::TIMESTAMP, 'delivery', 'batch {result.batch_id} at ' || $at FROM _batch""",
        {"at": f"{at:%Y-%m-%dT%H:%M:%SZ}"})  # fmt: skip
    batch = con.sql("SELECT * FROM _batch").to_arrow_table()
    con.execute("COMMIT")  # from here a crash leaves them submitting, resolved next time
    result.seconds["prepare"] = result.seconds.get("prepare", 0.0) + time.perf_counter() - started
    return batch


def _register_links(con, folder: Path, result: Delivery, at: datetime) -> None:
    """The chunk's links, durable before its hand-over; when they cannot be written, nothing
    of the chunk is handed over and the delivery stops with the reason."""
    result.chunks += 1
    try:
        n = write_to_registry(con, folder, f"{result.batch_id}-{result.chunks:05d}", at, "_batch")
    except OSError as exc:
        con.execute("ROLLBACK")
        raise LinkRegistryError(
            f"cannot register the tracked links in {folder}: {exc.strerror or exc}; "
            "nothing more was handed over, the rest stays queued"
        ) from exc
    _count(result, "links_registered", n)


class LinkRegistryError(RuntimeError):
    """The link registry cannot be written: a handed-over link would not resolve."""


def _hand_over(gateway, batch, batch_id: str, result: Delivery, clock: Clock) -> list[Answer]:
    started = time.perf_counter()
    answers = gateway.submit(batch, batch_id, clock)
    result.seconds["gateway"] = result.seconds.get("gateway", 0.0) + time.perf_counter() - started
    return answers


def _record_answers(con, batch_id: str, answers: list[Answer], result: Delivery) -> None:
    if not answers:
        return
    started = time.perf_counter()
    con.execute("BEGIN")
    _record(con, [(batch_id, *a) for a in answers])
    con.execute("COMMIT")
    result.seconds["record"] = result.seconds.get("record", 0.0) + time.perf_counter() - started
    for _, outcome, _, _ in answers:
        _count(result, outcome, 1)


def _count(result: Delivery, key: str, n: int) -> None:
    result.counts[key] = result.counts.get(key, 0) + n
