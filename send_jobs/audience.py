"""Audiences: one SQL query per campaign over the public marts, one row per customer.

Each trigger yields the customers it concerns and the explicit facts a message may name
(the due product, the booked appointment); the campaign's audience conditions then filter on
``marts.dim_customers``. Every query is parameterised by ``$as_of`` (a naive UTC timestamp).
"""

from __future__ import annotations

from send_jobs.campaign_specs import Campaign, Condition
from send_jobs.ledger import PRE_PERIOD_DAYS
from send_jobs.templates import sql_literal

# Columns every trigger query returns, besides customer_id (NULL where not applicable).
TRIGGER_COLUMNS = (
    "occasion",
    "product_id",
    "product_name",
    "category_name",
    "appointment_at",
    "store_name",
    "checklist",
    "bought_after",  # a purchase of product_id after this time suppresses the message
)
# dim_customers with the fields that are measured from the decision's moment, and the
# predicted value of the features build (null for a customer who never bought)
CUSTOMERS_AT_DECISION = """SELECT c.*,
        date_diff('second', c.last_sms_click_at, $as_of) / 86400.0 AS days_since_sms_click,
        CASE WHEN c.last_sms_click_at IS NOT NULL
             THEN coalesce(c.last_order_at > c.last_sms_click_at, false) END
            AS ordered_since_sms_click,
        date_diff('second', c.last_order_at, $as_of) / 86400.0 AS days_since_last_order,
        v.probability_alive,
        v.probability_alive - v.probability_alive_30d_ago AS probability_alive_change_30d,
        v.expected_purchases_90d, v.expected_revenue_90d
    FROM marts.dim_customers AS c
    LEFT JOIN predictions.customer_value AS v ON v.customer_id = c.customer_id"""
# each customer's net revenue in the PRE_PERIOD_DAYS before $as_of (the analysis's CUPED
# covariate and one of the uplift models' inputs)
PRE_PERIOD_SQL = f"""SELECT customer_id, sum(net_revenue) AS revenue FROM marts.fct_orders
    WHERE order_status <> 'cancelled' AND ordered_at <= $as_of
      AND ordered_at > $as_of - INTERVAL {PRE_PERIOD_DAYS} DAY
    GROUP BY 1"""
_OPS = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def condition_sql(c: Condition, alias: str = "d") -> str:
    col = f"{alias}.{c.field}"
    if c.op == "is_null":
        return f"{col} IS NULL"
    if c.op == "not_null":
        return f"{col} IS NOT NULL"
    if c.op in ("in", "not_in"):
        values = ", ".join(_value(v) for v in c.value)
        # not_in keeps NULLs out of the audience only when asked explicitly (is_null)
        return f"{col} {'NOT ' if c.op == 'not_in' else ''}IN ({values})"
    return f"{col} {_OPS[c.op]} {_value(c.value)}"


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return sql_literal(v) if isinstance(v, str) else repr(float(v))


def _trigger_sql(c: Campaign) -> str:
    """customer_id, the trigger columns and a rank (1 = the occasion this run picks)."""
    p = c.params
    nulls = {col: f"CAST(NULL AS VARCHAR) AS {col}" for col in TRIGGER_COLUMNS}
    nulls["appointment_at"] = "CAST(NULL AS TIMESTAMP) AS appointment_at"
    nulls["bought_after"] = "CAST(NULL AS TIMESTAMP) AS bought_after"

    def cols(**given: str) -> str:
        return ", ".join(f"{given[k]} AS {k}" if k in given else nulls[k] for k in TRIGGER_COLUMNS)

    if c.trigger == "customers":
        occasion = cols(occasion=sql_literal(c.id))
        return f"SELECT customer_id, {occasion}, 1 AS pick FROM marts.dim_customers"
    if c.trigger == "replenishment_due":
        # the window as of this run (the mart's status is as of its build)
        return f"""SELECT r.customer_id, {
            cols(
                occasion="r.product_id",
                product_id="r.product_id",
                product_name="p.product_name",
                bought_after="r.last_purchased_at",
            )
        },
            row_number() OVER (PARTITION BY r.customer_id
                               ORDER BY r.next_due_at, r.product_id) AS pick
            FROM marts.customer_replenishment AS r
            JOIN marts.dim_products AS p ON p.product_id = r.product_id
            WHERE r.window_opens_at <= $as_of AND $as_of < r.window_closes_at"""
    if c.trigger == "new_subscriber":
        return f"""SELECT customer_id, {cols(occasion=sql_literal(c.id))}, 1 AS pick
            FROM marts.customer_consent
            WHERE channel = 'sms' AND category = 'marketing' AND status = 'opted_in'
              AND since > $as_of - INTERVAL {int(p["within_days"])} DAY AND since <= $as_of"""
    if c.trigger == "category_launch":
        category = sql_literal(p["category"])
        return f"""WITH launched AS (
                SELECT product_id, product_name, category, launched_at FROM marts.dim_products
                WHERE category = {category} AND launched_at <= $as_of
                  AND launched_at > $as_of - INTERVAL {int(p["launched_within_days"])} DAY
                QUALIFY row_number() OVER (ORDER BY launched_at DESC, product_id) = 1)
            SELECT a.customer_id, {
            cols(
                occasion="l.product_id",
                product_id="l.product_id",
                product_name="l.product_name",
                category_name="l.category",
                bought_after="l.launched_at",
            )
        }, 1 AS pick
            FROM marts.customer_category_affinity AS a
            JOIN launched AS l ON l.category = a.category
            WHERE a.purchases > 0"""
    if c.trigger == "appointment_booked":
        at = "CAST(json_extract_string(e.properties, '$.appointment_at') AS TIMESTAMP)"
        return f"""SELECT customer_id, {
            cols(
                occasion="event_id",
                appointment_at="appointment_at",
                store_name="store_name",
                checklist="checklist",
            )
        },
            row_number() OVER (PARTITION BY customer_id ORDER BY appointment_at, event_id) AS pick
            FROM (SELECT e.customer_id, e.event_id, {at} AS appointment_at,
                    json_extract_string(e.properties, '$.store_name') AS store_name,
                    array_to_string(CAST(json_extract(e.properties, '$.checklist')
                                         AS VARCHAR[]), ' and ') AS checklist
                  FROM marts.fct_events AS e
                  WHERE e.event_type = 'appointment_booked' AND e.occurred_at <= $as_of)
            WHERE appointment_at > $as_of + INTERVAL {int(p["lead_hours_min"])} HOUR
              AND appointment_at <= $as_of + INTERVAL {int(p["lead_hours_max"])} HOUR"""
    if c.trigger == "checkout_abandoned":
        return _checkout_sql(c, cols)
    raise ValueError(f"unknown trigger {c.trigger}")


def _checkout_sql(c: Campaign, cols) -> str:
    """Checkouts started between ``within_hours`` and ``after_hours`` before the run with no
    order by the customer since; the latest one per customer is the occasion."""
    p = c.params
    return f"""SELECT e.customer_id, {
        cols(
            occasion="e.event_id",
            product_id="e.product_id",
            product_name="d.product_name",
            bought_after="e.occurred_at",
        )
    },
        row_number() OVER (PARTITION BY e.customer_id
                           ORDER BY e.occurred_at DESC, e.event_id DESC) AS pick
        FROM marts.fct_events AS e
        LEFT JOIN marts.dim_products AS d ON d.product_id = e.product_id
        WHERE e.event_type = 'checkout_started'
          AND e.occurred_at <= $as_of - INTERVAL {int(p["after_hours"])} HOUR
          AND e.occurred_at > $as_of - INTERVAL {int(p["within_hours"])} HOUR
          AND NOT EXISTS (SELECT 1 FROM marts.fct_orders AS o
                          WHERE o.customer_id = e.customer_id AND o.ordered_at >= e.occurred_at
                            AND o.ordered_at <= $as_of)"""


def audience_sql(c: Campaign) -> str:
    """One row per customer in the campaign's audience at $as_of, with profile columns."""
    where = " AND ".join(condition_sql(x) for x in c.audience) or "TRUE"
    tracked = (
        """, (SELECT p.product_name FROM marts.fct_events AS v
              JOIN marts.dim_products AS p ON p.product_id = v.product_id
              WHERE v.customer_id = d.customer_id AND v.event_type = 'product_view'
                AND v.occurred_at <= $as_of
              ORDER BY v.occurred_at DESC, v.event_id DESC LIMIT 1) AS last_viewed_product"""
        if "last_viewed_product" in c.uses_tracked_fields
        else ", CAST(NULL AS VARCHAR) AS last_viewed_product"
    )
    return f"""
        SELECT {sql_literal(c.id)} AS campaign_id, t.customer_id,
            {", ".join(f"t.{col}" for col in TRIGGER_COLUMNS)},
            d.phone_e164, d.country, d.region, d.time_zone, d.first_name, d.loyalty_tier,
            CAST(d.loyalty_points AS VARCHAR) AS loyalty_points, d.top_category,
            d.lifecycle_stage, d.rfm_segment, d.orders_count, d.lifetime_revenue, d.language,
            d.days_since_sms_click, d.ordered_since_sms_click, d.days_since_last_order,
            d.probability_alive, d.expected_revenue_90d
            {tracked}
        FROM ({_trigger_sql(c)}) AS t
        JOIN ({CUSTOMERS_AT_DECISION}) AS d ON d.customer_id = t.customer_id
        WHERE t.pick = 1 AND {where}"""
