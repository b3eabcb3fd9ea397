"""One send run's decisions: audience -> assignment -> guardrails -> render -> QA -> ledger.

Everything is set-based SQL in DuckDB over all active campaigns at once. Every candidate gets
exactly one row in ``sends.decisions`` with its arm, outcome and reason; messages for the
``sent`` rows are queued in ``sends.messages`` under an idempotency key (campaign, customer,
the recipient's local date), so a run that is repeated queues nothing new.

Assignment (``hash01`` = the first 52 bits of md5(text) as a fraction of 2^52):
  global control  hash01(salt:global:customer) < global_control_share   (marketing only)
  holdout         hash01(salt:campaign:customer) < holdout_share
  treatment       otherwise
Holdouts pass through the same guardrails and are recorded at the same point as
``held_out`` ("would have been sent"), and they count toward caps and cool-downs exactly like
a send, so both arms stay comparable.

Guardrails, first failing one is the reason (in this order): consent for the campaign's
category at the send moment (the warehouse's consent events plus STOP/START replies up to
as_of; at equal times an opt-out wins); a number with too many hard failures; the reminded
product bought since; the campaign's cool-down; the recipient's local sending window
(``deferred``, retried by later runs); marketing frequency caps; already queued under the
same key; one message per customer per run by campaign priority; one per number per run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from send_jobs import answers, encoding, links
from send_jobs.audience import PRE_PERIOD_SQL, audience_sql, condition_sql
from send_jobs.campaign_specs import RULES_DIR, Campaign, Program
from send_jobs.consent import consent_sql
from send_jobs.ledger import RECIPIENT_FAILURE_SQL, ensure_schema
from send_jobs.templates import render_sql, sql_literal
from targeting import customer_value, uplift


@dataclass
class RunResult:
    run_id: str
    as_of: datetime
    dry_run: bool
    resumed: bool
    counts: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)  # per stage, for benchmarks


# Characters a value never brings into a message: C0/C1 controls (line breaks, escapes),
# zero-width and bidirectional controls (text spoofing; they also force UCS-2 and double cost).
INVISIBLE = (
    "[\\x00-\\x1F\\x7F-\\x9F\\x{00AD}\\x{200B}-\\x{200F}\\x{202A}-\\x{202E}"
    "\\x{2060}-\\x{2064}\\x{2066}-\\x{2069}\\x{FEFF}]"
)


def clean_sql(expr: str) -> str:
    return f"regexp_replace({expr}, '{INVISIBLE}', '', 'g')"


def hash01(text_sql: str) -> str:
    return f"(CAST(('0x' || substr(md5({text_sql}), 1, 13)) AS UBIGINT) / 4503599627370496.0)"


def global_control_sql(program: Program, customer_id_sql: str) -> str:
    """True for a customer in the program's persistent global control group (no marketing
    texts ever), whether or not any campaign ever picked them."""
    salt = sql_literal(program.assignment_salt)
    u = hash01(f"{salt} || ':global:' || {customer_id_sql}")
    return f"({u} < {program.global_control_share!r})"


def run_id_for(as_of: datetime, dry_run: bool) -> str:
    return as_of.strftime("%Y%m%dT%H%M%SZ") + ("-dry" if dry_run else "")


def load_rules(con, rules_dir: Path = RULES_DIR) -> None:
    con.execute(f"""CREATE OR REPLACE TEMP TABLE quiet_hours AS
        SELECT country, region, CAST(window_start AS TIME) AS window_start,
            CAST(window_end AS TIME) AS window_end, coalesce(closed_weekdays, '') AS closed,
            CAST(closed_on_public_holidays AS BOOLEAN) AS closed_on_holidays
        FROM read_csv('{rules_dir / "quiet_hours.csv"}', all_varchar = true)""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE public_holidays AS
        SELECT country, CAST(date AS DATE) AS day, name
        FROM read_csv('{rules_dir / "public_holidays.csv"}', all_varchar = true)""")


def _open_sql(moment: str) -> str:
    """The window of the places z (country, region, time_zone; joined to quiet_hours r1-r3)
    is open at ``moment``: local time within the rule's hours, not a closed weekday or
    holiday."""
    rule = "coalesce(r1.{0}, r2.{0}, r3.{0})"
    local = f"timezone(z.time_zone, timezone('UTC', {moment}))"
    return f"""(CAST({local} AS TIME) >= {rule.format("window_start")}
         AND CAST({local} AS TIME) < {rule.format("window_end")}
         AND NOT contains({rule.format("closed")}, strftime({local}, '%a'))
         AND NOT ({rule.format("closed_on_holidays")} AND EXISTS (
             SELECT 1 FROM public_holidays AS h
             WHERE h.country = z.country AND h.day = CAST({local} AS DATE))))"""


def window_check(con, people: str, params: dict, until: str | None = None, alias: str = "c"):
    """(columns, joins) that give each row of ``alias`` (from the relation ``people``:
    customer_id, country, region, time_zone) its ``local_time`` and ``window_open`` at
    $as_of, and when given still at ``until`` (a hand-over that takes a while must end inside
    the window); needs load_rules. The window must be open in every zone the customer may be
    in: ``time_zone`` and any other zone in marts.customer_time_zones. Each place (country,
    region, zone) is judged once, not each of a million rows."""
    has_zones = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'marts' AND table_name = 'customer_time_zones'"
    ).fetchone()[0]
    other_zones = (
        "SELECT customer_id, time_zone FROM marts.customer_time_zones "
        "WHERE time_zone_source <> 'profile'"  # a profile gives exactly one zone
        if has_zones
        else "SELECT NULL AS customer_id, NULL AS time_zone WHERE false"
    )
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _other_zones AS
        SELECT DISTINCT p.customer_id, p.country, p.region, o.time_zone
        FROM {people} AS p JOIN ({other_zones}) AS o USING (customer_id)
        WHERE o.time_zone IS DISTINCT FROM p.time_zone""")
    still_open = f" AND {_open_sql(until)}" if until else ""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _places AS
        SELECT z.country, z.region, z.time_zone,
            timezone(z.time_zone, timezone('UTC', $as_of)) AS local_time,
            {_open_sql("$as_of")}{still_open} AS window_open
        FROM (SELECT DISTINCT country, region, time_zone FROM {people}
              UNION SELECT country, region, time_zone FROM _other_zones) AS z
        LEFT JOIN quiet_hours AS r1 ON r1.country = z.country AND r1.region = z.region
        LEFT JOIN quiet_hours AS r2 ON r2.country = z.country AND r2.region = '*'
        LEFT JOIN quiet_hours AS r3 ON r3.country = '*' AND r3.region = '*'""",
        params,
    )
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _closed_elsewhere AS
        SELECT DISTINCT o.customer_id FROM _other_zones AS o
        JOIN _places AS w {_same_place("o")} WHERE NOT w.window_open""")
    columns = "w.local_time, (w.window_open AND x.customer_id IS NULL) AS window_open"
    joins = f"""LEFT JOIN _places AS w {_same_place(alias)}
        LEFT JOIN _closed_elsewhere AS x ON x.customer_id = {alias}.customer_id"""
    return columns, joins


def _same_place(alias: str) -> str:
    return f"""ON w.country IS NOT DISTINCT FROM {alias}.country
        AND w.region IS NOT DISTINCT FROM {alias}.region
        AND w.time_zone IS NOT DISTINCT FROM {alias}.time_zone"""


def decide(
    con,
    program: Program,
    campaigns: list[Campaign],
    as_of: datetime,
    *,
    dry_run: bool = False,
    rules_dir: Path = RULES_DIR,
) -> RunResult:
    """Write this run's decisions (and queue its messages unless dry_run). A run whose
    decisions exist already is not decided again (``resumed``)."""
    ensure_schema(con)
    customer_value.ensure_tables(con)
    uplift.ensure_tables(con)
    links.ensure_secret(con)
    answers.store_options(con, program, campaigns)
    con.execute("SET TimeZone = 'UTC'")
    as_of_naive = as_of.replace(tzinfo=None)
    run_id = run_id_for(as_of, dry_run)
    params = {"as_of": as_of_naive}
    done = con.execute("SELECT count(*) FROM sends.runs WHERE run_id = ?", [run_id]).fetchone()[0]
    if done and not dry_run:
        return RunResult(run_id, as_of, dry_run, True, _counts(con, run_id))
    con.execute("BEGIN")
    try:
        con.execute("DELETE FROM sends.decisions WHERE run_id = ?", [run_id])
        con.execute("DELETE FROM sends.runs WHERE run_id = ?", [run_id])
        active = [c for c in campaigns if c.is_active(as_of.date())]
        if not active:  # nothing to decide: the run is still recorded
            con.execute(
                "INSERT INTO sends.runs VALUES (?, ?, ?, 0, 0, 0, 0, 0, 0)",
                [run_id, as_of_naive, dry_run],
            )
            con.execute("COMMIT")
            return RunResult(run_id, as_of, dry_run, False, {})
        load_rules(con, rules_dir)
        seconds, started = {}, time.perf_counter()
        for stage, step in (
            ("audience", lambda: _candidates(con, program, active, params)),
            ("guardrails", lambda: _guardrails(con, program, params, run_id)),
            ("render", lambda: _render(con, program, active, run_id)),
            ("qa", lambda: _qa(con, params)),
            ("targeting", lambda: _target(con, program, active)),
            ("ledger", lambda: _write(con, run_id, dry_run, params, len(active))),
        ):  # fmt: skip
            step()
            seconds[stage] = time.perf_counter() - started
            started = time.perf_counter()
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return RunResult(run_id, as_of, dry_run, False, _counts(con, run_id), seconds)


def _counts(con, run_id: str) -> dict[str, int]:
    rows = con.execute(
        "SELECT outcome, count(*) FROM sends.decisions WHERE run_id = ? GROUP BY 1", [run_id]
    ).fetchall()
    return {k: int(v) for k, v in rows}


def _campaign_table(con, active: list[Campaign]) -> None:
    con.execute("""CREATE OR REPLACE TEMP TABLE camp (campaign_id VARCHAR, category VARCHAR,
        priority INTEGER, holdout_share DOUBLE, cooldown_days INTEGER, once_ever BOOLEAN,
        max_segments INTEGER)""")
    con.executemany(
        "INSERT INTO camp VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            [c.id, c.category, c.priority, c.holdout_share, c.cooldown_days or 0,
             c.cooldown_days is None, c.max_segments]
            for c in active
        ],
    )  # fmt: skip
    con.execute(
        "CREATE OR REPLACE TEMP TABLE price (campaign_id VARCHAR, country VARCHAR, usd DOUBLE)"
    )
    rows = [[c.id, k, v] for c in active for k, v in c.cost_per_segment.items()]
    if rows:
        con.executemany("INSERT INTO price VALUES (?, ?, ?)", rows)


def _candidates(con, program: Program, active: list[Campaign], params) -> None:
    _campaign_table(con, active)
    union = " UNION ALL ".join(audience_sql(c) for c in active)
    salt = sql_literal(program.assignment_salt)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE cand AS
        SELECT a.*, k.category, k.priority, k.holdout_share, k.cooldown_days, k.once_ever,
            k.max_segments,
            {hash01(f"{salt} || ':global:' || a.customer_id")} AS u_global,
            {hash01(f"{salt} || ':' || a.campaign_id || ':' || a.customer_id")} AS u_holdout,
            {hash01(f"{salt} || ':variant:' || a.campaign_id || ':' || a.customer_id")}
                AS u_variant,
            CASE WHEN k.category = 'marketing' AND {global_control_sql(program, "a.customer_id")}
                 THEN 'global_control'
                 WHEN {hash01(f"{salt} || ':' || a.campaign_id || ':' || a.customer_id")}
                      < k.holdout_share THEN 'holdout'
                 ELSE 'treatment' END AS arm,
            strftime(timezone(a.time_zone, timezone('UTC', a.appointment_at)),
                     '%a %-d %b at %H:%M') AS appointment_time,
            CAST($as_of AS TIMESTAMP) AS decided_at
        FROM ({union}) AS a JOIN camp AS k USING (campaign_id)""",
        params,
    )


def _guardrails(con, program: Program, params, run_id: str) -> None:
    """Each candidate's reason not to be sent, if any (``ranked.reason_or_null``): what rules
    it out for good (``guarded.blocked``), then the send window, caps and idempotency
    (``screened``), then one message per customer and per number (``ranked``)."""
    _block(con, program, params, run_id)
    _screen(con, program)
    _rank(con)


def _history_ctes(program: Program, run_id: str) -> str:
    """consent, suppressed numbers, earlier decisions and the caps' counts, as CTEs."""
    return f"""
        consent AS ({consent_sql()}),
        bad_numbers AS (
            SELECT phone_e164 FROM sends.messages WHERE {RECIPIENT_FAILURE_SQL}
            GROUP BY 1 HAVING count(*) >= {program.hard_failures_to_suppress}),
        -- every earlier decision of any run, also of a later hour run before this one (runs
        -- may execute out of order): a cap or cool-down looks both ways in time
        past AS (
            SELECT d.campaign_id, d.customer_id, d.occasion, d.as_of, d.category
            FROM sends.decisions AS d JOIN sends.runs AS r USING (run_id)
            WHERE NOT r.dry_run AND d.outcome IN ('sent', 'held_out', 'not_targeted')
              AND d.run_id <> '{run_id}'),
        caps AS (
            SELECT customer_id,
                count(*) FILTER (WHERE as_of > $as_of - INTERVAL 24 HOUR
                                   AND as_of < $as_of + INTERVAL 24 HOUR) AS n_24h,
                count(*) AS n_7d
            FROM past WHERE category = 'marketing' AND as_of > $as_of - INTERVAL 7 DAY
              AND as_of < $as_of + INTERVAL 7 DAY
            GROUP BY 1)"""


def _blocked_case(program: Program) -> str:
    """What rules a candidate out whatever the hour: consent, a suppressed number, a
    purchase since the trigger, a cool-down."""
    return f"""
            CASE
                WHEN coalesce(k.action, 'never') <> 'opt_in' THEN
                    CASE WHEN k.action = 'opt_out' THEN 'no consent: opted out of ' || c.category
                         ELSE 'no consent: never opted in to ' || c.category END
                WHEN c.phone_e164 IN (SELECT phone_e164 FROM bad_numbers)
                    THEN 'number suppressed: {program.hard_failures_to_suppress}+ hard failures'
                WHEN c.bought_after IS NOT NULL AND EXISTS (
                    SELECT 1 FROM raw.orders AS o
                    WHERE o.customer_id = c.customer_id
                      AND (o.product_id = c.product_id OR c.product_id IS NULL)
                      AND o.status = 'completed' AND o.ordered_at > c.bought_after
                      AND o.ordered_at <= $as_of)
                    THEN coalesce('already bought ' || c.product_id,
                                  'already ordered since the trigger')
                WHEN EXISTS (SELECT 1 FROM past AS p
                    WHERE p.campaign_id = c.campaign_id AND p.customer_id = c.customer_id
                      AND (c.once_ever
                           OR (c.cooldown_days = 0 AND p.occasion = c.occasion)
                           OR (c.cooldown_days > 0
                               AND p.as_of > $as_of - c.cooldown_days * INTERVAL 1 DAY
                               AND p.as_of < $as_of + c.cooldown_days * INTERVAL 1 DAY)))
                    THEN CASE WHEN c.once_ever THEN 'already received (once per customer)'
                              WHEN c.cooldown_days = 0 THEN 'already received for this occasion'
                              ELSE 'cool-down: received within ' || c.cooldown_days || ' days'
                         END
                ELSE NULL END AS blocked"""


def _block(con, program: Program, params, run_id: str) -> None:
    window_cols, window_joins = window_check(con, "cand", params)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE guarded AS
        WITH {_history_ctes(program, run_id)}
        SELECT c.*, {window_cols},
            c.campaign_id || '|' || c.customer_id || '|'
                || CAST(CAST(timezone(c.time_zone, timezone('UTC', $as_of)) AS DATE) AS VARCHAR)
                AS idempotency_key,
            {_blocked_case(program)},
            coalesce(q.n_24h, 0) AS n_24h, coalesce(q.n_7d, 0) AS n_7d
        FROM cand AS c
        LEFT JOIN consent AS k ON k.customer_id = c.customer_id AND k.category = c.category
        LEFT JOIN caps AS q ON q.customer_id = c.customer_id
        {window_joins}""",
        params,
    )


def _screen(con, program: Program) -> None:
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE screened AS
        SELECT g.*,
            CASE
                WHEN blocked IS NOT NULL THEN blocked
                WHEN NOT window_open THEN 'quiet hours: local time '
                    || strftime(local_time, '%a %H:%M') || ' is outside the window'
                WHEN category = 'marketing' AND n_24h >= {program.cap_24h}
                    THEN 'frequency cap: {program.cap_24h} per 24 h'
                WHEN category = 'marketing' AND n_7d >= {program.cap_7d}
                    THEN 'frequency cap: {program.cap_7d} per 7 days'
                WHEN idempotency_key IN (SELECT idempotency_key FROM sends.messages)
                    THEN 'already queued today under the same key'
                ELSE NULL END AS stop_reason
        FROM guarded AS g"""
    )


def _rank(con) -> None:
    con.execute(
        """CREATE OR REPLACE TEMP TABLE ranked AS
        WITH first_per_customer AS (
            SELECT *, row_number() OVER (PARTITION BY customer_id
                ORDER BY priority, campaign_id) AS customer_rank,
                first_value(campaign_id) OVER (PARTITION BY customer_id
                ORDER BY priority, campaign_id) AS winner
            FROM screened WHERE stop_reason IS NULL),
        first_per_number AS (
            SELECT *, row_number() OVER (PARTITION BY phone_e164
                ORDER BY priority, customer_id) AS number_rank
            FROM first_per_customer WHERE customer_rank = 1)
        SELECT s.*, CASE
                WHEN s.stop_reason IS NOT NULL THEN s.stop_reason
                WHEN f.customer_rank > 1
                    THEN 'one message per run: ' || f.winner || ' goes first'
                WHEN n.number_rank > 1 THEN 'duplicate number: another customer shares it'
                ELSE NULL END AS reason_or_null
        FROM screened AS s
        LEFT JOIN first_per_customer AS f USING (campaign_id, customer_id)
        LEFT JOIN first_per_number AS n USING (campaign_id, customer_id)"""
    )


def _render(con, program: Program, active: list[Campaign], run_id: str) -> None:
    fields = program.fields
    variant_case, body_case, fallback_items, link_case = [], [], [], []
    for c in active:
        weighted = [v for v in c.variants if not v.when]
        total = sum(v.weight for v in weighted)
        whens, cum = [], 0.0
        for v in c.variants:
            if v.when:
                cond = " AND ".join(condition_sql(x, "r") for x in v.when)
                whens.append(f"WHEN {cond} THEN '{v.id}'")
        for v in weighted[:-1]:
            cum += v.weight / total
            whens.append(f"WHEN r.u_variant < {cum!r} THEN '{v.id}'")
        pick = (
            f"CASE {' '.join(whens)} ELSE '{weighted[-1].id}' END"
            if whens
            else (f"'{weighted[-1].id}'")
        )
        variant_case.append(f"WHEN r.campaign_id = '{c.id}' THEN {pick}")
        for v in c.variants:
            if "link" in v.template.fields:
                url = links.destination(c.link or program.link_destination, c.id, v.id)
                link_case.append(
                    f"WHEN k.campaign_id = '{c.id}' AND k.variant = '{v.id}' "
                    f"THEN {sql_literal(url)}"
                )
            field_sql = {}
            for name in v.template.fields:
                if name == "link":
                    field_sql[name] = f"{sql_literal(program.link_base)} || r.link_code"
                elif name == "offer":
                    field_sql[name] = sql_literal(v.offer or "")
                else:
                    fallback = sql_literal(str(fields[name]["fallback"]))
                    value = f"nullif(trim({clean_sql(f'r.{name}')}), '')"
                    field_sql[name] = f"coalesce({value}, {fallback})"
                    fallback_items.append(
                        f"CASE WHEN r.campaign_id = '{c.id}' AND r.variant = '{v.id}' AND "
                        f"{value} IS NULL THEN '{name}' END"
                    )
            body_case.append(
                f"WHEN r.campaign_id = '{c.id}' AND r.variant = '{v.id}' "
                f"THEN {render_sql(v.template, field_sql)}"
            )
    fallbacks = (
        f"list_filter([{', '.join(fallback_items)}], lambda x: x IS NOT NULL)"
        if fallback_items
        else "CAST([] AS VARCHAR[])"
    )
    link_url = f"CASE {' '.join(link_case)} END" if link_case else "CAST(NULL AS VARCHAR)"
    brand = sql_literal(program.brand + ": ")
    opt_out = sql_literal(" " + program.opt_out_text)
    # one statement, narrow columns: no wide intermediate tables on the hot path
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE rendered AS
        WITH keyed AS (
            SELECT r.*, md5(r.idempotency_key) AS digest,
                {links.code_number_sql("r.idempotency_key")} AS link_number,
                CASE {" ".join(variant_case)} END AS variant
            FROM ranked AS r WHERE r.reason_or_null IS NULL),
        -- a customer has had a first marketing text once one was handed to the gateway;
        -- one that expired, was cancelled or refused does not count
        first_marketing AS (
            SELECT DISTINCT customer_id FROM sends.messages
            WHERE category = 'marketing'
              AND status IN ('submitted', 'accepted', 'unconfirmed', 'delivered', 'undelivered')),
        prepared AS (
            SELECT k.*, substr(k.digest, 1, 16) AS message_id,
                {links.code_sql("k.link_number")} AS link_code, {link_url} AS link_url,
                k.category = 'marketing' AND f.customer_id IS NULL AS needs_opt_out
            FROM keyed AS k LEFT JOIN first_marketing AS f USING (customer_id)),
        texts AS (
            SELECT r.campaign_id, r.customer_id, r.country, r.phone_e164, r.max_segments,
                r.variant, r.message_id, r.needs_opt_out, r.link_url,
                CASE WHEN r.link_url IS NOT NULL THEN r.link_code END AS link_code,
                {brand} || (CASE {" ".join(body_case)} END)
                    || CASE WHEN r.needs_opt_out THEN {opt_out} ELSE '' END AS rendered_text,
                {fallbacks} AS fallback_fields
            FROM prepared AS r),
        encoded AS (SELECT t.*, {encoding.sql_columns("t.rendered_text")} FROM texts AS t)
        SELECT *, {encoding.sql_segments()} AS segments FROM encoded"""
    )


def _qa(con, params) -> None:
    """Check every rendered message and settle each candidate's outcome and reason; keep
    the customer's segments and pre-period revenue as the decision saw them."""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE checked AS
        WITH pre_period AS ({PRE_PERIOD_SQL}),
        qa AS (
            SELECT r.*, coalesce(p1.usd, p0.usd) AS usd,
                CASE
                    WHEN r.rendered_text IS NULL OR length(trim(r.rendered_text)) = 0
                        THEN 'qa: empty message'
                    WHEN r.segments > r.max_segments
                        THEN 'qa: ' || r.segments || ' segments exceed the campaign maximum of '
                             || r.max_segments
                    WHEN r.needs_opt_out AND NOT contains(r.rendered_text, 'STOP')
                        THEN 'qa: opt-out instructions missing'
                    WHEN r.phone_e164 IS NULL THEN 'qa: no phone number'
                    ELSE NULL END AS qa_failure
            FROM rendered AS r
            LEFT JOIN price AS p1 ON p1.campaign_id = r.campaign_id AND p1.country = r.country
            LEFT JOIN price AS p0 ON p0.campaign_id = r.campaign_id AND p0.country = 'default')
        SELECT r.campaign_id, r.customer_id, r.category, r.arm, r.phone_e164, r.occasion,
            r.product_id, r.local_time, r.idempotency_key, r.country, r.region, r.time_zone,
            CASE WHEN q.customer_id IS NULL THEN
                     CASE WHEN r.reason_or_null LIKE 'quiet hours%' THEN 'deferred'
                          ELSE 'suppressed' END
                 WHEN q.qa_failure IS NOT NULL THEN 'suppressed'
                 WHEN r.arm = 'treatment' THEN 'sent'
                 ELSE 'held_out' END AS outcome,
            coalesce(r.reason_or_null, q.qa_failure,
                CASE r.arm WHEN 'treatment' THEN 'sent'
                           WHEN 'holdout' THEN 'campaign holdout: would have been sent'
                           ELSE 'global control: would have been sent' END) AS reason,
            q.variant, q.rendered_text, q.encoding, q.segments,
            q.segments * q.usd AS estimated_cost, q.message_id, q.fallback_fields,
            r.lifecycle_stage, r.loyalty_tier, r.rfm_segment,
            coalesce(p.revenue, 0) AS pre_period_revenue, r.orders_count, r.lifetime_revenue,
            r.days_since_last_order, r.probability_alive, r.expected_revenue_90d,
            q.link_code, q.link_url
        FROM ranked AS r
        LEFT JOIN qa AS q USING (campaign_id, customer_id)
        LEFT JOIN pre_period AS p USING (customer_id)""",
        params,
    )


def _target(con, program: Program, active: list[Campaign]) -> None:
    """Uplift targeting, after every guardrail: a treated unit the policy does not select is
    ``not_targeted`` (no text; still a unit of the treatment arm, so the holdout measures the
    policy as a whole). A unit is texted when it falls in the campaign's random learning
    share, when no model has been trained yet, or when its predicted incremental margin
    covers the text's estimated cost plus the offer's; a holdout records what the policy
    would have done. Only the targeted campaigns' rows are touched, in place."""
    con.execute("DROP TABLE IF EXISTS decided")
    con.execute("ALTER TABLE checked ADD COLUMN targeting VARCHAR")
    con.execute("ALTER TABLE checked ADD COLUMN predicted_uplift DOUBLE")
    rows = [[c.id, c.targeting.learning_share, c.targeting.offer_cost]
            for c in active if c.targeting.mode == "uplift"]  # fmt: skip
    if rows:
        con.execute("""CREATE OR REPLACE TEMP TABLE targeted_campaigns (campaign_id VARCHAR,
            learning_share DOUBLE, offer_cost DOUBLE)""")
        con.executemany("INSERT INTO targeted_campaigns VALUES (?, ?, ?)", rows)
        con.execute(_targeting_update_sql(program))
    con.execute("ALTER TABLE checked RENAME TO decided")


def _targeting_update_sql(program: Program) -> str:
    salt = sql_literal(program.assignment_salt)
    learning = hash01(f"{salt} || ':learning:' || c.campaign_id || ':' || c.customer_id")
    return f"""
        UPDATE checked AS d SET targeting = p.targeting,
            predicted_uplift = p.predicted_incremental_margin,
            outcome = CASE WHEN p.targeting = 'not_selected' AND d.outcome = 'sent'
                           THEN 'not_targeted' ELSE d.outcome END,
            reason = CASE WHEN p.targeting = 'not_selected' AND d.outcome = 'sent'
                          THEN printf('uplift targeting: predicted incremental margin %.4f USD '
                                      || 'does not cover the cost %.4f USD',
                                      p.predicted_incremental_margin, p.cost)
                          ELSE d.reason END
        FROM (
            SELECT c.campaign_id, c.customer_id, u.predicted_incremental_margin,
                coalesce(c.estimated_cost, 0) + t.offer_cost AS cost,
                CASE WHEN {learning} < t.learning_share THEN 'learning'
                     WHEN u.predicted_incremental_margin IS NULL THEN 'no_model'
                     WHEN u.predicted_incremental_margin > coalesce(c.estimated_cost, 0)
                                                           + t.offer_cost THEN 'selected'
                     ELSE 'not_selected' END AS targeting
            FROM checked AS c JOIN targeted_campaigns AS t USING (campaign_id)
            LEFT JOIN predictions.campaign_uplift AS u
                ON u.campaign_id = c.campaign_id AND u.customer_id = c.customer_id
            WHERE c.outcome IN ('sent', 'held_out')) AS p
        WHERE p.campaign_id = d.campaign_id AND p.customer_id = d.customer_id"""


def _write(con, run_id: str, dry_run: bool, params, n_campaigns: int) -> None:
    """One decision row per candidate; queue the sends (unless dry run)."""
    con.execute(
        f"""INSERT INTO sends.decisions BY NAME
        SELECT '{run_id}' AS run_id, $as_of AS as_of, campaign_id, category, customer_id, arm,
            outcome, reason, variant, rendered_text, encoding, segments, estimated_cost,
            phone_e164, occasion, product_id, local_time, idempotency_key, message_id,
            fallback_fields, lifecycle_stage, loyalty_tier, rfm_segment, pre_period_revenue,
            orders_count, lifetime_revenue, days_since_last_order, probability_alive,
            expected_revenue_90d, targeting, predicted_uplift
        FROM decided""",
        params,
    )
    if not dry_run:
        con.execute(
            f"""INSERT INTO sends.messages
            SELECT message_id, idempotency_key, '{run_id}', $as_of, campaign_id, category,
                customer_id, phone_e164, country, region, time_zone, rendered_text, encoding,
                segments, estimated_cost, 'queued', $as_of, 0, NULL, NULL, NULL, NULL, NULL,
                link_code, link_url
            FROM decided WHERE outcome = 'sent'""",
            params,
        )
        con.execute(
            f"""INSERT INTO sends.message_events
            SELECT message_id, 'queued', $as_of, 'run {run_id}', NULL
            FROM decided WHERE outcome = 'sent'""",
            params,
        )
    con.execute(
        f"""INSERT INTO sends.runs
        SELECT '{run_id}', $as_of, {str(dry_run).upper()}, {n_campaigns}, count(*),
            count(*) FILTER (WHERE outcome = 'sent'), count(*) FILTER (WHERE outcome = 'held_out'),
            count(*) FILTER (WHERE outcome = 'suppressed'),
            count(*) FILTER (WHERE outcome = 'deferred')
        FROM decided""",
        params,
    )
