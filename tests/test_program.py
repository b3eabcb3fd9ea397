"""The program measured as a whole by assignment: the eligible population, the global control
drawn by the same hash as the send path (recomputed here with hashlib), and the estimates
checked against statsmodels on revenue recounted from the orders in Python."""

import hashlib
from datetime import timedelta

import numpy as np
import pytest
from mini_warehouse import INSERT_ORDER, MiniWarehouse, campaign, program, utc
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from experiments.program import measure_program
from send_jobs.decide import decide
from send_jobs.deliver import deliver
from send_jobs.gateways import OutboxGateway

START = utc("2026-06-10T15:00:00Z")
AS_OF = utc("2026-07-10T00:00:00Z")
SALT = "program-test"
# one worker builds the module's shared world once
pytestmark = pytest.mark.xdist_group("program")

CUSTOMERS = """INSERT INTO marts.dim_customers (customer_id, phone_e164, country, region,
    time_zone, first_name, loyalty_tier, loyalty_points, top_category, lifecycle_stage,
    rfm_segment, orders_count, lifetime_revenue, language)
SELECT printf('C%05d', i), printf('+1212%07d', i), 'US', 'NY', 'America/New_York', 'Ada',
    'bronze', 0, 'coffee', 'active', 'loyal', 1, 10.0, 'en'
FROM range(0, 3400) AS t(i)"""
# C00000-C02999 opted in a year before; C03000-C03199 never; C03200-C03299 opted out before
# the start; C03300-C03399 opt in ten days after it
CONSENT = """INSERT INTO raw.consent
SELECT printf('K%05d', i), printf('C%05d', i), printf('+1212%07d', i), 'sms', 'marketing',
    'opt_in', TIMESTAMP '2025-06-01'
FROM range(0, 3400) AS t(i) WHERE i < 3000 OR i >= 3200;
INSERT INTO raw.consent
SELECT printf('L%05d', i), printf('C%05d', i), printf('+1212%07d', i), 'sms', 'marketing',
    CASE WHEN i < 3300 THEN 'opt_out' ELSE 'opt_in' END,
    CASE WHEN i < 3300 THEN TIMESTAMP '2026-01-01' ELSE TIMESTAMP '2026-06-20' END
FROM range(3200, 3400) AS t(i)"""


def in_global_control(customer_id: str, share: float) -> bool:
    digest = hashlib.md5(f"{SALT}:global:{customer_id}".encode()).hexdigest()
    return int(digest[:13], 16) / 2**52 < share


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("program")
    w = MiniWarehouse(root / "w.duckdb")
    w.con.execute(CUSTOMERS)
    w.con.execute(CONSENT)
    prog = program(global_control_share=0.2, assignment_salt=SALT)
    promo = campaign(prog, holdout_share=0.1)
    start = START.replace(tzinfo=None)
    rng = np.random.default_rng(8)
    orders = []
    for i in range(3400):  # pre-period spend, one older order, and what came after the start
        cid = f"C{i:05d}"
        if rng.random() < 0.5:
            orders.append((f"P{i}", cid, start - timedelta(days=12), float(rng.gamma(2, 15))))
        orders.append((f"Q{i}", cid, start - timedelta(days=90), 500.0))  # before the pre-period
    w.con.executemany(INSERT_ORDER, [(*o, "completed") for o in orders])
    decide(w.con, prog, [promo], START)
    deliver(w.con, prog, START, OutboxGateway(root / "outbox"))
    after = []
    for i in range(3400):
        cid = f"C{i:05d}"
        rate = 0.30 if in_global_control(cid, 0.2) else 0.36
        if rng.random() < rate:
            after.append((f"A{i}", cid, start + timedelta(days=3), float(rng.gamma(2, 20))))
    after.append(("LATE", "C00001", AS_OF.replace(tzinfo=None) + timedelta(days=1), 999.0))
    w.con.executemany(INSERT_ORDER, [(*o, "completed") for o in after])
    w.con.execute(INSERT_ORDER, ["X", "C00002", start + timedelta(days=1), 999.0, "cancelled"])
    w.reply("+12120000003", "opt_out", "2026-06-11T10:00:00Z")  # a STOP after the text
    row = measure_program(w.con, AS_OF, prog).iloc[0]
    return w, prog, orders + after, row


def test_the_eligible_population_and_its_assignment(world):
    _, _, _, row = world
    eligible = [f"C{i:05d}" for i in range(3400) if i < 3000 or i >= 3300]
    control = [c for c in eligible if in_global_control(c, 0.2)]
    assert row.started_at == START.replace(tzinfo=None)
    assert row.eligible == len(eligible) == 3100  # the STOP after the text stays in
    assert (row.n_global_control, row.n_rest) == (len(control), len(eligible) - len(control))


def test_estimates_match_statsmodels_on_revenue_recounted_from_the_orders(world):
    w, _, orders, row = world
    start, as_of = START.replace(tzinfo=None), AS_OF.replace(tzinfo=None)
    revenue: dict[str, float] = {}
    for _, cid, at, value in orders:
        if start < at <= as_of:
            revenue[cid] = revenue.get(cid, 0.0) + value
    eligible = [f"C{i:05d}" for i in range(3400) if i < 3000 or i >= 3300]
    control = np.array([revenue.get(c, 0.0) for c in eligible if in_global_control(c, 0.2)])
    rest = np.array([revenue.get(c, 0.0) for c in eligible if not in_global_control(c, 0.2)])
    compare = CompareMeans(DescrStatsW(rest), DescrStatsW(control))
    low, high = compare.tconfint_diff(alpha=0.05, usevar="unequal")
    assert row.revenue_per_customer_control == pytest.approx(control.mean())
    assert row.incremental_revenue_per_customer == pytest.approx(rest.mean() - control.mean())
    assert (row.ci_low, row.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert row.seq_ci_low < row.ci_low and row.seq_ci_high > row.ci_high
    assert row.incremental_revenue == pytest.approx((rest.mean() - control.mean()) * len(rest))
    cost = w.con.execute("SELECT sum(estimated_cost) FROM sends.messages "
                         "WHERE handed_over_at IS NOT NULL").fetchone()[0]  # fmt: skip
    assert row.cost == pytest.approx(cost) and row.messages > 0
    assert row.return_on_spend == pytest.approx(row.incremental_revenue / cost)
    assert row.return_on_spend_ci_low == pytest.approx(low * len(rest) / cost)
    # the true effect: 6 more buyers in 100 at a mean order of 40, 2.40 per customer
    assert row.ci_low < 2.40 < row.ci_high


def test_history_and_a_program_that_has_not_sent(world, tmp_path):
    w, prog, _, _ = world
    kept = w.con.execute("SELECT count(*) FROM experiments.program_results_history").fetchone()
    assert kept[0] == 1
    empty = MiniWarehouse(tmp_path / "empty.duckdb")
    from send_jobs.ledger import ensure_schema

    ensure_schema(empty.con)
    assert measure_program(empty.con, AS_OF, prog).empty
