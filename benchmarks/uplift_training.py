"""The cost of uplift targeting at scale: N past randomised decisions (``experiments.units``)
and N customers to score, in a DuckDB file; then ``targeting.uplift.train_and_score`` as the
analysis runs it (read the units, fit the T-learner, read every customer's covariates, score,
write ``predictions.campaign_uplift``), each part timed, and the Qini evaluation with its
bootstrap on the same units.

The units respond by kind as in the closed loop (``simulator/kinds.py``), so the fitted
model can be checked: its mean prediction per kind against the true incremental margin.

    python -m benchmarks.uplift_training [--decisions 100000 1000000] [--bootstrap 200]

Writes benchmarks/results/uplift-training.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from benchmarks.customer_value import timed
from send_jobs.campaign_specs import load_program, parse_campaign
from simulator.kinds import KINDS, kind_of
from targeting import uplift
from targeting.customer_value import ensure_tables
from targeting.qini import qini
from warehouse.contract import create_marts_sql

RESULTS = Path(__file__).parent / "results"
AS_OF = datetime(2026, 6, 18, 15, 0)
ORDER_VALUE = 24.0
STAGES = ("active", "lapsed")
TIERS = ("bronze", "silver", "gold", "platinum")


def people(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    stage = rng.choice(STAGES, n)
    return pd.DataFrame({
        "customer_id": [f"C{i:08d}" for i in range(n)],
        "lifecycle_stage": stage,
        "loyalty_tier": rng.choice(TIERS, n),
        "rfm_segment": rng.choice(["champions", "loyal", "at_risk", "hibernating"], n),
        "orders_count": rng.poisson(4, n) + 1,
        "lifetime_revenue": rng.gamma(2.0, 150.0, n),
        "last_order_days": np.where(stage == "active", rng.uniform(1, 30, n),
                                    rng.uniform(120, 400, n)),
    })  # fmt: skip


def warehouse(path: Path, n: int, seed: int) -> duckdb.DuckDBPyConnection:
    """marts.dim_customers and experiments.units for n customers, one unit each: a 10%
    holdout, the rest texted; revenue by kind."""
    con = duckdb.connect(str(path))
    con.execute(create_marts_sql())
    ensure_tables(con)
    frame = people(n, seed)
    rng = np.random.default_rng(seed + 1)
    treated = rng.random(n) >= 0.10
    kinds = kind_of(frame.lifecycle_stage, frame.loyalty_tier)
    p = np.array([KINDS[k][1] if t else KINDS[k][0] for k, t in zip(kinds, treated, strict=True)])
    frame["revenue"] = (rng.random(n) < p) * ORDER_VALUE
    frame["arm"] = np.where(treated, "treatment", "holdout")
    con.register("frame", frame)
    con.execute(
        """INSERT INTO marts.dim_customers (customer_id, lifecycle_stage, loyalty_tier,
               rfm_segment, orders_count, lifetime_revenue, last_order_at)
           SELECT customer_id, lifecycle_stage, loyalty_tier, rfm_segment, orders_count,
               lifetime_revenue, $at - to_seconds(CAST(last_order_days * 86400 AS BIGINT))
           FROM frame""",
        {"at": AS_OF},
    )
    con.execute(
        """CREATE SCHEMA experiments;
           CREATE TABLE experiments.units AS
           SELECT 'promo' AS campaign_id, customer_id, arm, $at AS decided_at,
               CASE arm WHEN 'treatment' THEN 'sent' ELSE 'held_out' END AS decision,
               lifecycle_stage, loyalty_tier, rfm_segment, revenue, 0.0 AS pre_period_revenue,
               CAST(orders_count AS DOUBLE) AS orders_count, lifetime_revenue,
               last_order_days AS days_since_last_order, CAST(NULL AS DOUBLE) AS probability_alive,
               CAST(NULL AS DOUBLE) AS expected_revenue_90d, 'no_model' AS targeting,
               CAST(NULL AS DOUBLE) AS predicted_uplift
           FROM frame""",
        {"at": AS_OF},
    )
    con.unregister("frame")
    return con


def run(n: int, seed: int, bootstrap: int, folder: Path) -> dict:
    program = load_program()
    con = warehouse(folder / f"uplift-{n}.duckdb", n, seed)
    promo = parse_campaign({
        "id": "promo", "name": "promo", "category": "marketing",
        "trigger": {"type": "customers"}, "holdout_share": 0.1,
        "targeting": {"mode": "uplift"},
        "variants": [{"id": "v1", "template": "Hi {{ first_name }}"}],
    }, program)  # fmt: skip
    rate = program.gross_margin_rate
    units, read_units_s = timed(lambda: uplift.training_units(con, ["promo"], rate))
    model, fit_s = timed(lambda: uplift.TLearner().fit(units, units.treated, units.margin))
    customers, read_customers_s = timed(lambda: uplift.customers_now(con, AS_OF))
    predicted, predict_s = timed(lambda: model.predict(customers))
    _, whole_s = timed(lambda: uplift.train_and_score(con, [promo], rate, AS_OF))
    kinds = kind_of(customers.lifecycle_stage, customers.loyalty_tier)
    by_kind = {
        k: {"predicted": round(float(predicted[kinds == k].mean()), 3),
            "true": round((KINDS[k][1] - KINDS[k][0]) * ORDER_VALUE * rate, 3)}
        for k in KINDS
    }  # fmt: skip
    sample = np.random.default_rng(seed + 2).choice(len(units), min(len(units), 100_000), False)
    evaluated = units.iloc[sample]
    q, qini_s = timed(lambda: qini(model.predict(evaluated), evaluated.treated,
                                   evaluated.margin, bootstrap=bootstrap))  # fmt: skip
    scored = con.execute("SELECT count(*) FROM predictions.campaign_uplift").fetchone()[0]
    con.close()
    return {
        "decisions": n,
        "seconds": {
            "read_units": read_units_s,
            "fit_t_learner": fit_s,
            "read_customers": read_customers_s,
            "predict": predict_s,
            "train_and_score_total": whole_s,
            f"qini_{len(evaluated)}_units_{bootstrap}_bootstraps": qini_s,
        },  # fmt: skip
        "scored_customers": scored,
        "mean_prediction_by_kind": by_kind,
        "qini_coefficient": [q.coefficient, q.ci_low, q.ci_high],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for n in args.decisions:
            result = run(n, args.seed, args.bootstrap, Path(folder))
            results.append(result)
            print(f"{n:,} decisions: " + ", ".join(
                f"{k} {v:.2f} s" for k, v in result["seconds"].items()))  # fmt: skip
            print("  mean prediction by kind (true): " + ", ".join(
                f"{k} {v['predicted']:+.3f} ({v['true']:+.3f})"
                for k, v in result["mean_prediction_by_kind"].items()))  # fmt: skip
            c, lo, hi = result["qini_coefficient"]
            print(f"  Qini coefficient {c:.4f} [{lo:.4f}, {hi:.4f}]; "
                  f"peak RSS {result['peak_rss_mb']:,} MB")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "uplift-training.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
