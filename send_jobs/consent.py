"""SMS consent at a moment, as the send path reads it: the warehouse's consent events plus the
replies (STOP/START) loaded from the gateway, one rule for deciding and for hand-over.

- The latest event at or before the moment wins; at the same instant an opt-out wins.
- A STOP-type reply opts the number out of every SMS category, for every customer on it.
- START/UNSTOP undoes only an opt-out that came by reply: it restores a category whose latest
  warehouse event (web form, CRM, import) before it is an opt-in. It never overrides an
  opt-out given elsewhere and never creates consent that was not given.
- YES and every other answer change nothing (intent ``yes``, no action).
- SMS consent belongs to the number it was given for: only events for the customer's
  current number count, so a changed number needs its own opt-in.

``consent_sql(people, at)`` takes a relation with ``customer_id`` and ``phone_e164`` and a SQL
time expression; it yields ``customer_id, category, action`` for each pair with any event.
"""

from __future__ import annotations

CATEGORIES = ("marketing", "transactional")


def consent_sql(people: str = "cand", at: str = "$as_of") -> str:
    categories = ", ".join(f"('{c}')" for c in CATEGORIES)
    return f"""
        WITH who AS (SELECT DISTINCT customer_id, phone_e164 FROM {people}),
        warehouse AS (
            SELECT customer_id, category, action, occurred_at
            FROM raw.consent
            WHERE channel = 'sms' AND occurred_at <= {at}
              AND (customer_id, phone_e164) IN (SELECT customer_id, phone_e164 FROM who)),
        replies AS (
            SELECT w.customer_id, k.category, i.action, i.occurred_at
            FROM sends.inbound AS i
            JOIN who AS w ON w.phone_e164 = i.phone_e164
            CROSS JOIN (VALUES {categories}) AS k(category)
            WHERE i.occurred_at <= {at} AND i.action IN ('opt_out', 'opt_in')),
        effective_replies AS (
            SELECT r.* FROM replies AS r
            WHERE r.action = 'opt_out' OR (
                SELECT e.action FROM warehouse AS e
                WHERE e.customer_id = r.customer_id AND e.category = r.category
                  AND e.occurred_at <= r.occurred_at
                ORDER BY e.occurred_at DESC, (e.action = 'opt_out') DESC LIMIT 1) = 'opt_in'),
        events AS (
            SELECT *, 0 AS from_reply FROM warehouse
            UNION ALL SELECT *, 1 FROM effective_replies)
        SELECT customer_id, category, action FROM events
        QUALIFY row_number() OVER (PARTITION BY customer_id, category
            ORDER BY occurred_at DESC, (action = 'opt_out') DESC, from_reply DESC) = 1"""
