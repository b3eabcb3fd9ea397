"""Two-way texts: a campaign's question (``reply_options``), the replies that answer it, and
the one message that answers each.

- Each decision run stores its campaigns' options in ``sends.reply_options`` (the words
  compared as ``reply_key``, the action, the answer text with the brand), so a load of the
  receiver's journal matches replies in SQL without reading campaign files.
- A reply that is not about consent or help (those keep their meaning whatever was asked:
  STOP to a question opts out, and an option word never changes consent) is matched to the
  last question handed over to that number that is still open (``valid_hours`` after its
  hand-over); when it is one of that question's options it is recorded in
  ``sends.reply_actions`` (the state change, e.g. ``confirmed``) and its answer is queued as
  a transactional message, once per question and action (idempotency key
  ``answer:<question>:<action>``), handed over by the next delivery under every guardrail.
- Replies no option explains (no open question, or another word) stay in ``sends.inbox`` for
  a person.
"""

from __future__ import annotations

from send_jobs import encoding
from send_jobs.campaign_specs import Campaign, Program, reply_key
from send_jobs.templates import sql_literal

ANSWER_RUN = "answers"  # sends.messages.run_id of queued answers


def reply_key_sql(text_sql: str) -> str:
    """The SQL twin of ``campaign_specs.reply_key``."""
    return (
        f"trim(regexp_replace(lower(strip_accents(coalesce({text_sql}, ''))), "
        "'[^0-9a-z]+', ' ', 'g'))"
    )


def store_options(con, program: Program, campaigns: list[Campaign]) -> None:
    """The campaigns' reply options as this run knows them (a campaign that dropped its
    question has no rows left)."""
    if not campaigns:
        return
    ids = ", ".join(sql_literal(c.id) for c in campaigns)
    con.execute(f"DELETE FROM sends.reply_options WHERE campaign_id IN ({ids})")
    rows = [
        [c.id, reply_key(word), option.action, f"{program.brand}: {option.answer}",
         c.reply_valid_hours]
        for c in campaigns for option in c.reply_options for word in option.words
    ]  # fmt: skip
    if rows:
        con.executemany("INSERT INTO sends.reply_options VALUES (?, ?, ?, ?, ?)", rows)


def match_replies(con, inbound_ids: str) -> dict[str, int]:
    """Match the replies ``inbound_ids`` (a relation of inbound_id) to open questions:
    record the actions, queue the answers; returns counts."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _answered AS
        WITH new AS (
            SELECT inbound_id, phone_e164, text, received_at FROM sends.inbound
            WHERE inbound_id IN (SELECT inbound_id FROM {inbound_ids})
              AND action IS NULL AND intent NOT IN ('opt_out', 'opt_in', 'help')),
        questions AS (
            SELECT m.message_id AS question_id, m.campaign_id, m.customer_id, m.phone_e164,
                m.country, m.region, m.time_zone, m.handed_over_at AS asked_at,
                m.estimated_cost / nullif(m.segments, 0) AS cost_per_segment, h.valid_hours
            FROM sends.messages AS m
            JOIN (SELECT campaign_id, max(valid_hours) AS valid_hours
                  FROM sends.reply_options GROUP BY 1) AS h USING (campaign_id)
            WHERE m.handed_over_at IS NOT NULL AND m.run_id <> '{ANSWER_RUN}'),
        open_question AS (
            SELECT n.inbound_id, n.text, n.received_at, q.*
            FROM new AS n JOIN questions AS q ON q.phone_e164 = n.phone_e164
                AND q.asked_at <= n.received_at
                AND n.received_at <= q.asked_at + to_hours(q.valid_hours)
            QUALIFY row_number() OVER (PARTITION BY n.inbound_id
                                       ORDER BY q.asked_at DESC, q.question_id DESC) = 1)
        SELECT q.*, o.action, o.answer,
            'answer:' || q.question_id || ':' || o.action AS idempotency_key,
            substr(md5('answer:' || q.question_id || ':' || o.action), 1, 16) AS answer_id,
            d.occasion
        FROM open_question AS q
        JOIN sends.reply_options AS o
            ON o.campaign_id = q.campaign_id AND o.reply_key = {reply_key_sql("q.text")}
        LEFT JOIN (SELECT DISTINCT message_id, occasion FROM sends.decisions) AS d
            ON d.message_id = q.question_id""")
    recorded = con.execute("""INSERT OR IGNORE INTO sends.reply_actions
        SELECT inbound_id, question_id, campaign_id, customer_id, occasion, action, text,
            received_at, answer_id, now()::TIMESTAMP FROM _answered""").fetchone()[0]
    return {"answers_recorded": recorded, "answers_queued": _queue_answers(con)}


def _queue_answers(con) -> int:
    """One transactional message per question and action not answered yet."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _answers_new AS
        WITH first AS (
            SELECT * FROM _answered
            WHERE idempotency_key NOT IN (SELECT idempotency_key FROM sends.messages)
            QUALIFY row_number() OVER (PARTITION BY idempotency_key
                                       ORDER BY received_at, inbound_id) = 1),
        sized AS (SELECT f.*, {encoding.sql_columns("f.answer")} FROM first AS f)
        SELECT *, {encoding.sql_segments()} AS segments FROM sized""")
    con.execute(f"""INSERT INTO sends.messages BY NAME
        SELECT answer_id AS message_id, idempotency_key, '{ANSWER_RUN}' AS run_id,
            received_at AS as_of, campaign_id, 'transactional' AS category, customer_id,
            phone_e164, country, region, time_zone, answer AS text, encoding, segments,
            segments * coalesce(cost_per_segment, 0) AS estimated_cost, 'queued' AS status,
            received_at AS status_at, 0 AS attempts
        FROM _answers_new""")
    con.execute("""INSERT INTO sends.message_events
        SELECT answer_id, 'queued', received_at, 'reply ' || inbound_id, action
        FROM _answers_new""")
    return con.execute("SELECT count(*) FROM _answers_new").fetchone()[0]
