"""The program as a whole, by assignment: what did texting change, all campaigns together?
Writes ``experiments.program_units`` (the eligible customers, their group and outcomes) and
``experiments.program_results`` (one row per analysis date, each kept in
``experiments.program_results_history``).

Intent to treat. The population is every customer eligible for marketing texts during the
program: opted in to SMS marketing when the program started (its first real marketing
decision), or opting in between then and ``as_of``. Each is in the global control group or
not by the same stable hash the send path assigns with (``send_jobs.decide.
global_control_sql``), whether or not any campaign ever picked them, so the two groups are
comparable: a customer who was never texted because no audience took them counts in the
rest exactly as their twin in the control counts there. A later opt-out, caused by a text
or not, changes nothing.

Outcomes from the start to ``as_of``: revenue per customer (net, orders not cancelled) and
conversion (any order). Incremental revenue per customer is rest minus control, with the
Welch interval, its always-valid interval and CUPED on the 30 days before the start;
incremental revenue is that times the rest's customers, cost the estimated cost of every
marketing message handed over, return on spend incremental revenue / cost (its interval
the revenue interval / cost).
"""

from __future__ import annotations

import math
from datetime import datetime

import pandas as pd

from experiments.guardrails import WENT_OUT
from experiments.history import keep_history
from experiments.stats import SEQUENTIAL_TUNING, lift
from send_jobs.campaign_specs import Program
from send_jobs.consent import consent_sql
from send_jobs.decide import global_control_sql
from send_jobs.ledger import PRE_PERIOD_DAYS

START_SQL = """SELECT min(d.as_of) FROM sends.decisions AS d JOIN sends.runs AS r USING (run_id)
    WHERE NOT r.dry_run AND d.category = 'marketing' AND d.outcome IN ('sent', 'held_out')
      AND d.as_of <= $as_of"""

COST_SQL = f"""SELECT count(*), coalesce(sum(estimated_cost), 0) FROM sends.messages
    WHERE category = 'marketing' AND status IN {WENT_OUT}
      AND coalesce(handed_over_at, as_of) <= $as_of"""


def units_sql(program: Program) -> str:
    """One row per eligible customer: in the global control or not, revenue and orders from
    $start to $as_of, revenue in the pre-period before $start."""
    return f"""
    WITH people AS (SELECT customer_id, phone_e164 FROM marts.dim_customers),
    at_start AS ({consent_sql("people", "$start")}),
    eligible AS (
        SELECT customer_id FROM at_start WHERE category = 'marketing' AND action = 'opt_in'
        UNION
        SELECT customer_id FROM raw.consent
        WHERE channel = 'sms' AND category = 'marketing' AND action = 'opt_in'
          AND occurred_at > $start AND occurred_at <= $as_of),
    orders AS (
        SELECT customer_id,
            sum(net_revenue) FILTER (WHERE ordered_at > $start) AS revenue,
            count(*) FILTER (WHERE ordered_at > $start) AS orders,
            sum(net_revenue) FILTER (WHERE ordered_at <= $start) AS pre_period_revenue
        FROM marts.fct_orders
        WHERE order_status <> 'cancelled' AND ordered_at <= $as_of
          AND ordered_at > $start - INTERVAL {PRE_PERIOD_DAYS} DAY
        GROUP BY 1)
    SELECT e.customer_id, {global_control_sql(program, "e.customer_id")} AS global_control,
        coalesce(o.revenue, 0) AS revenue, CAST(coalesce(o.orders, 0) > 0 AS INTEGER)
            AS conversion, coalesce(o.pre_period_revenue, 0) AS pre_period_revenue
    FROM eligible AS e LEFT JOIN orders AS o USING (customer_id)
    ORDER BY e.customer_id"""


def program_result(units: pd.DataFrame, messages: int, cost: float, start, as_of: datetime,
                   tuning: float = SEQUENTIAL_TUNING) -> dict:  # fmt: skip
    """The program's row from its eligible customers (``units_sql``) and message cost."""
    control, rest = units[units.global_control], units[~units.global_control]
    revenue = lift(
        control.revenue, rest.revenue, metric="mean", tuning=tuning,
        control_covariate=control.pre_period_revenue,
        treatment_covariate=rest.pre_period_revenue,
    )  # fmt: skip
    conversion = lift(control.conversion, rest.conversion, metric="proportion", tuning=tuning)
    n_rest = len(rest)

    def per_spend(value: float) -> float:
        return value * n_rest / cost if cost > 0 else math.nan

    notes = [] if len(control) else ["no global control group: the program cannot be measured"]
    return {
        "as_of": as_of.replace(tzinfo=None), "started_at": start, "eligible": len(units),
        "n_global_control": len(control), "n_rest": n_rest,
        "revenue_per_customer_control": revenue.control_mean,
        "revenue_per_customer_rest": revenue.treatment_mean,
        "incremental_revenue_per_customer": revenue.abs_lift,
        "ci_low": revenue.abs_ci_low, "ci_high": revenue.abs_ci_high,
        "seq_ci_low": revenue.seq_abs_ci_low, "seq_ci_high": revenue.seq_abs_ci_high,
        "cuped_incremental_revenue_per_customer": revenue.cuped_abs_lift,
        "cuped_ci_low": revenue.cuped_abs_ci_low, "cuped_ci_high": revenue.cuped_abs_ci_high,
        "p_value": revenue.p_value,
        "conversion_control": conversion.control_mean, "conversion_rest": conversion.treatment_mean,
        "incremental_revenue": revenue.abs_lift * n_rest,
        "incremental_revenue_ci_low": revenue.abs_ci_low * n_rest,
        "incremental_revenue_ci_high": revenue.abs_ci_high * n_rest,
        "messages": messages, "cost": cost,
        "return_on_spend": per_spend(revenue.abs_lift),
        "return_on_spend_ci_low": per_spend(revenue.abs_ci_low),
        "return_on_spend_ci_high": per_spend(revenue.abs_ci_high),
        "note": "; ".join([*notes, *revenue.notes]),
    }  # fmt: skip


def measure_program(con, as_of: datetime, program: Program) -> pd.DataFrame:
    """Write ``experiments.program_results`` as of ``as_of`` (always-valid intervals tuned
    at the program's ``sequential_tuning``); an empty frame (and no table change) while no
    marketing decision has been made."""
    params = {"as_of": as_of.replace(tzinfo=None)}
    start = con.execute(START_SQL, params).fetchone()[0]
    if start is None:
        return pd.DataFrame()
    units = con.execute(units_sql(program), {**params, "start": start}).df()
    con.execute("CREATE SCHEMA IF NOT EXISTS experiments")
    con.register("_units", units)
    con.execute("CREATE OR REPLACE TABLE experiments.program_units AS SELECT * FROM _units")
    con.unregister("_units")
    [(messages, cost)] = con.execute(COST_SQL, params).fetchall()
    row = pd.DataFrame(
        [program_result(units, int(messages), float(cost), start, as_of, program.sequential_tuning)]
    )
    con.register("_program", row)
    con.execute("CREATE OR REPLACE TABLE experiments.program_results AS SELECT * FROM _program")
    con.unregister("_program")
    keep_history(con, row, "program_results", as_of)
    return row
