"""Predicted customer value at scale: N purchase histories drawn from BG/NBD and Gamma-Gamma
with known parameters (in days and currency), written as ``marts.customer_purchase_history``
in a DuckDB file; then the warehouse step as the features build runs it, timed, and each
part of it alone (grouping in SQL, each fit, scoring and writing; the parts' sum differs
from the step's time by this box's swings). The fitted parameters
are printed beside the true ones: at a million customers they should be close.

    python -m benchmarks.customer_value [--customers 100000 1000000] [--seed 7]

Writes benchmarks/results/customer-value.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from targeting import clv
from targeting.customer_value import HISTORY, ensure_tables, predict_customer_value, write_scores
from warehouse.contract import create_marts_sql

RESULTS = Path(__file__).parent / "results"
TRUE_BG = {"r": 0.6, "alpha": 40.0, "a": 0.8, "b": 2.5}
TRUE_GG = {"p": 6.0, "q": 4.0, "v": 150.0}
AS_OF = datetime(2026, 6, 1)
MAX_AGE_DAYS = 730


def histories(n: int, seed: int) -> pd.DataFrame:
    """BG/NBD: purchases at rate lambda ~ Gamma(r, alpha) while alive; after each repeat the
    customer leaves with probability p ~ Beta(a, b). Gamma-Gamma for the mean repeat value.
    Ages uniform over two years; times rounded down to days."""
    rng = np.random.default_rng(seed)
    bg, gg = TRUE_BG, TRUE_GG
    age = rng.uniform(0, MAX_AGE_DAYS, n)
    rate = rng.gamma(bg["r"], 1 / bg["alpha"], n)
    leave = rng.beta(bg["a"], bg["b"], n)
    arrivals = rng.poisson(rate * age)
    lives_for = rng.geometric(leave)  # repeats until, and including, the one after leaving
    x = np.minimum(arrivals, lives_for)
    # the x-th of `arrivals` uniform times on [0, age] is Beta(x, arrivals - x + 1)
    last = np.where(x > 0, rng.beta(np.maximum(x, 1), arrivals - x + 1) * age, 0.0)
    nu = rng.gamma(gg["q"], 1 / gg["v"], n)
    mean_value = np.where(
        x > 0, rng.gamma(gg["p"] * np.maximum(x, 1), 1 / (nu * np.maximum(x, 1))), np.nan
    )
    age_days, last_days = np.floor(age).astype(int), np.floor(last).astype(int)
    return pd.DataFrame({
        "customer_id": [f"C{i:08d}" for i in range(n)],
        "repeat_purchases": x,
        "recency_days": last_days,
        "age_days": age_days,
        "mean_repeat_value": mean_value,
    })  # fmt: skip


def timed(fn):
    """fn's value and the seconds it took (3 decimals)."""
    started = time.perf_counter()
    value = fn()
    return value, round(time.perf_counter() - started, 3)


def run(n: int, seed: int, folder: Path) -> dict:
    con = duckdb.connect(str(folder / f"value-{n}.duckdb"))
    con.execute(create_marts_sql())
    ensure_tables(con)
    frame = histories(n, seed)
    con.register("frame", frame)
    con.execute(
        f"""INSERT INTO {HISTORY} (customer_id, first_purchase_date, repeat_purchases,
            recency_days, age_days, mean_repeat_value, as_of)
        SELECT customer_id, DATE '{AS_OF.date()}' - CAST(age_days AS INTEGER), repeat_purchases,
            recency_days, age_days, mean_repeat_value, TIMESTAMP '{AS_OF}' FROM frame"""
    )
    con.unregister("frame")
    del frame
    grouped, group_s = timed(lambda: con.execute(
        f"""SELECT repeat_purchases AS x, recency_days AS t_x, age_days AS t, count(*) AS n
            FROM {HISTORY} GROUP BY ALL ORDER BY ALL""").df())  # fmt: skip
    spends, spend_group_s = timed(lambda: con.execute(
        f"""SELECT repeat_purchases AS x, mean_repeat_value AS m, count(*) AS n FROM {HISTORY}
            WHERE repeat_purchases > 0 GROUP BY ALL ORDER BY ALL""").df())  # fmt: skip
    bg, bg_s = timed(lambda: clv.fit_beta_geo(grouped.x, grouped.t_x, grouped.t, grouped.n))
    gg, gg_s = timed(lambda: clv.fit_gamma_gamma(spends.x, spends.m, spends.n))
    _, score_s = timed(lambda: write_scores(con, bg, gg, AS_OF))
    fits, step_s = timed(lambda: predict_customer_value(con, AS_OF))
    scored = con.execute(
        "SELECT count(*), count(expected_revenue_90d) FROM predictions.customer_value"
    ).fetchone()
    con.close()
    return {
        "customers": n,
        "distinct_histories": len(grouped),
        "distinct_spend_rows": len(spends),
        "seconds": {
            "group_histories_sql": group_s,
            "group_spend_sql": spend_group_s,
            "fit_bg_nbd": bg_s,
            "fit_gamma_gamma": gg_s,
            "score_and_write": score_s,
            "warehouse_step_total": step_s,
        },
        "scored_rows": scored[0],
        "scored_with_revenue": scored[1],
        "fits_recorded": [f.status for f in fits],
        "true": {**TRUE_BG, **TRUE_GG},
        "fitted": {
            "r": bg.r,
            "alpha": bg.alpha,
            "a": bg.a,
            "b": bg.b,
            "p": gg.p,
            "q": gg.q,
            "v": gg.v,
        },  # fmt: skip
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for n in args.customers:
            result = run(n, args.seed, Path(folder))
            results.append(result)
            s = result["seconds"]
            print(f"{n:,} customers: {result['distinct_histories']:,} distinct histories, "
                  f"{result['distinct_spend_rows']:,} spend rows")  # fmt: skip
            print("  " + ", ".join(f"{k} {v:.2f} s" for k, v in s.items()))
            print("  " + ", ".join(
                f"{k} {result['fitted'][k]:.3f} (true {result['true'][k]:g})"
                for k in result["true"]))  # fmt: skip
            print(f"  peak RSS {result['peak_rss_mb']:,} MB")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "customer-value.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
