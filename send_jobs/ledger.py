"""The send ledger in the warehouse (schema ``sends``): runs, one decision row per candidate,
messages keyed by an idempotency key with their status history, gateway receipts and replies.

Message statuses move forward only (``RANK``): a late "accepted" receipt never overwrites
"delivered". Final statuses: delivered, undelivered, rejected, expired (not sent within its
validity), cancelled (the recipient opted out or left their window before it went out).
"""

from __future__ import annotations

RANK = {
    "queued": 0,
    "submitting": 1,
    "submitted": 2,
    "accepted": 3,
    "unconfirmed": 8,  # sent, but no final receipt came in time; a late receipt still counts
    "delivered": 9,
    "undelivered": 9,
    "rejected": 9,
    "expired": 9,
    "cancelled": 9,
}
FINAL = tuple(s for s, r in RANK.items() if r == 9)
HARD_FAILURES = ("undelivered", "rejected")
# a message counts against its number when the carrier (DLR) or the gateway said the
# recipient was the problem; rows from before the flag existed count by their status
RECIPIENT_FAILURE_SQL = f"coalesce(recipient_failure, status IN {HARD_FAILURES})"
# Kannel DLR type -> ledger status (1 delivered, 2 undelivered, 4 queued on the SMSC,
# 8 accepted by the SMSC, 16 rejected by the SMSC)
# net revenue in the days before a decision, written on its row: the CUPED covariate
PRE_PERIOD_DAYS = 30
DLR_STATUS = {1: "delivered", 2: "undelivered", 4: "accepted", 8: "accepted", 16: "rejected"}

DDL = """
CREATE SCHEMA IF NOT EXISTS sends;
CREATE TABLE IF NOT EXISTS sends.runs (
    run_id VARCHAR PRIMARY KEY, as_of TIMESTAMP NOT NULL, dry_run BOOLEAN NOT NULL,
    campaigns INTEGER, candidates BIGINT, sent BIGINT, held_out BIGINT, suppressed BIGINT,
    deferred BIGINT);
CREATE TABLE IF NOT EXISTS sends.decisions (
    run_id VARCHAR NOT NULL, as_of TIMESTAMP NOT NULL, campaign_id VARCHAR NOT NULL,
    category VARCHAR NOT NULL, customer_id VARCHAR NOT NULL, arm VARCHAR NOT NULL,
    outcome VARCHAR NOT NULL, reason VARCHAR NOT NULL, variant VARCHAR, rendered_text VARCHAR,
    encoding VARCHAR, segments INTEGER, estimated_cost DOUBLE, phone_e164 VARCHAR,
    occasion VARCHAR, product_id VARCHAR, local_time TIMESTAMP, idempotency_key VARCHAR,
    message_id VARCHAR, fallback_fields VARCHAR[], lifecycle_stage VARCHAR,
    loyalty_tier VARCHAR, rfm_segment VARCHAR, pre_period_revenue DOUBLE,
    PRIMARY KEY (run_id, campaign_id, customer_id));
-- the customer as the decision saw it (the analysis's segments and CUPED covariate are never
-- measured after the message); older ledgers get the columns here, NULL on their rows
ALTER TABLE sends.decisions ADD COLUMN IF NOT EXISTS lifecycle_stage VARCHAR;
ALTER TABLE sends.decisions ADD COLUMN IF NOT EXISTS loyalty_tier VARCHAR;
ALTER TABLE sends.decisions ADD COLUMN IF NOT EXISTS rfm_segment VARCHAR;
ALTER TABLE sends.decisions ADD COLUMN IF NOT EXISTS pre_period_revenue DOUBLE;
-- the rest of what the uplift models learn from, as the decision saw it
ALTER TABLE sends.decisions ADD COLUMN IF NOT EXISTS orders_count DOUBLE;
ALTER TABLE sends.decisions ADD COLUMN IF NOT EXISTS lifetime_revenue DOUBLE;
ALTER TABLE sends.decisions ADD COLUMN IF NOT EXISTS days_since_last_order DOUBLE;
ALTER TABLE sends.decisions ADD COLUMN IF NOT EXISTS probability_alive DOUBLE;
ALTER TABLE sends.decisions ADD COLUMN IF NOT EXISTS expected_revenue_90d DOUBLE;
-- a campaign with uplift targeting: what the policy did with the unit (learning, no_model,
-- selected, not_selected; for a holdout, what it would have done) and the model's predicted
-- incremental margin; NULL for a campaign that texts its whole audience
ALTER TABLE sends.decisions ADD COLUMN IF NOT EXISTS targeting VARCHAR;
ALTER TABLE sends.decisions ADD COLUMN IF NOT EXISTS predicted_uplift DOUBLE;
CREATE TABLE IF NOT EXISTS sends.messages (
    message_id VARCHAR PRIMARY KEY, idempotency_key VARCHAR NOT NULL UNIQUE,
    run_id VARCHAR NOT NULL, as_of TIMESTAMP NOT NULL, campaign_id VARCHAR NOT NULL,
    category VARCHAR NOT NULL, customer_id VARCHAR NOT NULL, phone_e164 VARCHAR NOT NULL,
    country VARCHAR, region VARCHAR, time_zone VARCHAR, text VARCHAR NOT NULL,
    encoding VARCHAR NOT NULL, segments INTEGER NOT NULL, estimated_cost DOUBLE,
    status VARCHAR NOT NULL, status_at TIMESTAMP NOT NULL, attempts INTEGER NOT NULL,
    gateway VARCHAR, batch_id VARCHAR, last_error VARCHAR, handed_over_at TIMESTAMP,
    recipient_failure BOOLEAN);
-- when each message was handed over (the caller's clock) and whether its failure is the
-- recipient's (counts toward suppressing the number); older ledgers get the columns here
ALTER TABLE sends.messages ADD COLUMN IF NOT EXISTS handed_over_at TIMESTAMP;
ALTER TABLE sends.messages ADD COLUMN IF NOT EXISTS recipient_failure BOOLEAN;
-- the message's tracked link: its code (send_jobs.links) and where it leads, UTM included
ALTER TABLE sends.messages ADD COLUMN IF NOT EXISTS link_code VARCHAR;
ALTER TABLE sends.messages ADD COLUMN IF NOT EXISTS link_url VARCHAR;
-- where each batch's gateway keeps its journal or files, so any later delivery, through
-- whichever gateway, can resolve the batch's messages left submitting
CREATE TABLE IF NOT EXISTS sends.batches (
    batch_id VARCHAR PRIMARY KEY, gateway VARCHAR NOT NULL, location VARCHAR NOT NULL,
    opened_at TIMESTAMP NOT NULL, log_offset BIGINT);
-- log_offset: where the gateway's own log (Kannel's access log) ended when the batch opened
ALTER TABLE sends.batches ADD COLUMN IF NOT EXISTS log_offset BIGINT;
CREATE TABLE IF NOT EXISTS sends.message_events (
    message_id VARCHAR NOT NULL, status VARCHAR NOT NULL, changed_at TIMESTAMP NOT NULL,
    source VARCHAR NOT NULL, detail VARCHAR);
CREATE TABLE IF NOT EXISTS sends.receipts (
    message_id VARCHAR NOT NULL, dlr INTEGER NOT NULL, status VARCHAR NOT NULL,
    smsc_reply VARCHAR, reported_at VARCHAR, received_at TIMESTAMP NOT NULL,
    file VARCHAR NOT NULL, line BIGINT NOT NULL, PRIMARY KEY (message_id, dlr));
CREATE TABLE IF NOT EXISTS sends.inbound (
    inbound_id VARCHAR PRIMARY KEY, phone_e164 VARCHAR NOT NULL, text VARCHAR,
    intent VARCHAR NOT NULL, action VARCHAR, flagged BOOLEAN NOT NULL,
    occurred_at TIMESTAMP NOT NULL, received_at TIMESTAMP NOT NULL, file VARCHAR NOT NULL,
    line BIGINT NOT NULL, sender_raw VARCHAR, rule VARCHAR);
ALTER TABLE sends.inbound ADD COLUMN IF NOT EXISTS sender_raw VARCHAR;
ALTER TABLE sends.inbound ADD COLUMN IF NOT EXISTS rule VARCHAR;
-- taps on tracked links, as the link service journaled them (ua_class preview: a bot that
-- opened the link, not a person); loaded_at: when the load took them
CREATE TABLE IF NOT EXISTS sends.clicks (
    click_id VARCHAR PRIMARY KEY, code VARCHAR NOT NULL, message_id VARCHAR NOT NULL,
    campaign_id VARCHAR NOT NULL, customer_id VARCHAR NOT NULL, ua_class VARCHAR NOT NULL,
    clicked_at TIMESTAMP NOT NULL, loaded_at TIMESTAMP NOT NULL, file VARCHAR NOT NULL,
    line BIGINT NOT NULL);
-- two-way texts (send_jobs/answers.py): each campaign's reply options as its last decision
-- run knew them, and the replies that answered a question
CREATE TABLE IF NOT EXISTS sends.reply_options (
    campaign_id VARCHAR NOT NULL, reply_key VARCHAR NOT NULL, action VARCHAR NOT NULL,
    answer VARCHAR NOT NULL, valid_hours INTEGER NOT NULL, PRIMARY KEY (campaign_id, reply_key));
CREATE TABLE IF NOT EXISTS sends.reply_actions (
    inbound_id VARCHAR PRIMARY KEY, question_id VARCHAR NOT NULL, campaign_id VARCHAR NOT NULL,
    customer_id VARCHAR NOT NULL, occasion VARCHAR, action VARCHAR NOT NULL, reply VARCHAR,
    occurred_at TIMESTAMP NOT NULL, answer_id VARCHAR NOT NULL, loaded_at TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS sends.gateway_files (
    file VARCHAR PRIMARY KEY, bytes_read BIGINT NOT NULL, lines_read BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS sends.gateway_quarantine (
    file VARCHAR NOT NULL, line BIGINT NOT NULL, reason VARCHAR NOT NULL, raw VARCHAR);
"""


# replies a person should read: flagged by the reader, or no answer to an open question
INBOX = """
CREATE OR REPLACE VIEW sends.inbox AS
SELECT i.inbound_id, i.phone_e164, i.text, i.intent, i.received_at,
    CASE WHEN i.flagged THEN 'flagged: read as ' || i.intent
         ELSE 'matches no option of an open question' END AS why,
    (SELECT m.campaign_id FROM sends.messages AS m
     WHERE m.phone_e164 = i.phone_e164 AND m.handed_over_at <= i.received_at
     ORDER BY m.handed_over_at DESC LIMIT 1) AS last_campaign
FROM sends.inbound AS i
WHERE i.flagged OR (i.action IS NULL AND i.intent <> 'help'
                    AND i.inbound_id NOT IN (SELECT inbound_id FROM sends.reply_actions))
"""


def ensure_schema(con) -> None:
    con.execute(DDL)
    con.execute(INBOX)


def advance(con, updates: str, source: str, at_sql: str = "now()::TIMESTAMP") -> int:
    """Apply status changes given as a SQL relation (message_id, status, detail), forward only,
    recording each change in the status history; a hard failure counts against the number
    unless the caller clears ``recipient_failure``. Returns the number of messages changed."""
    rank = " ".join(f"WHEN '{s}' THEN {r}" for s, r in RANK.items())
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _steps AS
        SELECT DISTINCT ON (u.message_id, u.status) u.message_id, u.status, u.detail,
            (CASE u.status {rank} END) AS rank, {at_sql} AS changed_at
        FROM ({updates}) AS u JOIN sends.messages AS m USING (message_id)
        WHERE (CASE u.status {rank} END) > (CASE m.status {rank} END)""")
    # every step forward goes into the history (accepted, then delivered), in rank order
    con.execute(f"""INSERT INTO sends.message_events
        SELECT message_id, status, changed_at, '{source}', detail FROM _steps
        ORDER BY message_id, rank""")
    con.execute("""CREATE OR REPLACE TEMP TABLE _advance AS SELECT * FROM _steps
        QUALIFY row_number() OVER (PARTITION BY message_id ORDER BY rank DESC, status) = 1""")
    con.execute(f"""UPDATE sends.messages AS m SET status = a.status, status_at = a.changed_at,
            last_error = CASE WHEN a.status IN {HARD_FAILURES} THEN a.detail
                              ELSE m.last_error END,
            recipient_failure = CASE WHEN a.status IN {HARD_FAILURES} THEN true
                                     ELSE m.recipient_failure END
        FROM _advance AS a WHERE m.message_id = a.message_id""")
    return con.execute("SELECT count(*) FROM _advance").fetchone()[0]
