"""The uplift closed loop: does texting only whom a text changes earn more than texting
everyone, or than texting the best RFM segments?

N experiment worlds side by side (``simulator/experiment_world.py``) whose customers respond
by kind (``simulator/kinds.py``: persuadables, lost causes, sure things, sleeping dogs).

1. Learning period: one campaign per world texts its whole audience with a 50% holdout;
   the customers respond; ``retentext run`` loads the responses and builds the features.
2. The analysis trains each world's uplift model on those randomised units.
3. Policy period, eight days later, on three copies of the warehouse and landing: per world
   a new campaign (20% holdout) that texts everyone, or only RFM champions and loyal
   customers, or whom its model selects (10% learning share). Each copy's customers respond,
   with the same luck per customer in every copy, and are loaded, built and analysed.

Per world and policy: messages sent, opt-outs, and the incremental margin measured against
the policy's own holdout (margin = net revenue x the program's gross margin rate, less the
texts' cost), per 1,000 messages. The table gives means over worlds with 95% t-intervals,
and the uplift policy's difference from send-to-all, paired by world.

    python -m benchmarks.uplift_loop [--worlds 12] [--customers 1600] [--seed 1]

Writes benchmarks/results/uplift-loop.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from scipy import stats

from experiments.analysis import analyse
from experiments.uplift import measure_uplift
from send_jobs.campaign_specs import load_program, parse_campaign
from send_jobs.decide import decide
from send_jobs.deliver import deliver
from send_jobs.gateways import OutboxGateway
from simulator.experiment_world import region_of, write_experiment_world
from simulator.kinds import respond_by_kind
from targeting.uplift import train_and_score

RESULTS = Path(__file__).parent / "results"
LEARN_AT = datetime(2026, 6, 10, 15, 0, tzinfo=UTC)
POLICY_AT = LEARN_AT + timedelta(days=8)
MEASURE_AT = POLICY_AT + timedelta(days=8)
POLICIES = ("send_to_all", "rfm", "uplift")
RFM_BEST = ["champions", "loyal"]


def _campaign(program, cid: str, world: int, holdout: float, audience: tuple = (),
              **fields):  # fmt: skip
    """A campaign for one world's customers (and any further ``audience`` conditions)."""
    spec = {
        "id": cid, "name": cid, "category": "marketing", "priority": 10,
        "trigger": {"type": "customers"}, "holdout_share": holdout,
        "audience": [{"field": "region", "op": "eq", "value": region_of(world)}, *audience],
        "variants": [{"id": "v1", "template": "Hi {{ first_name }}, we miss you: 10% off"}],
        **fields,
    }  # fmt: skip
    return parse_campaign(spec, program, f"<{cid}>")


def policy_campaigns(program, policy: str, worlds: int) -> list:
    campaigns = []
    for w in range(worlds):
        fields: dict = {}
        if policy == "rfm":
            fields["audience"] = ({"field": "rfm_segment", "op": "in", "value": RFM_BEST},)
        if policy == "uplift":
            fields["targeting"] = {"mode": "uplift", "learning_share": 0.1,
                                   "learn_from": [f"learn_w{w:03d}"]}  # fmt: skip
        campaigns.append(_campaign(program, f"policy_w{w:03d}", w, 0.2, **fields))
    return campaigns


def _run_pipeline(landing: Path, warehouse: Path, as_of: datetime) -> None:
    from orchestration.cli import main

    code = main(["run", "--landing", str(landing), "--warehouse", str(warehouse),
                 "--as-of", as_of.isoformat()])  # fmt: skip
    if code:
        raise SystemExit(f"retentext run as of {as_of} failed")


def _send_and_respond(warehouse: Path, landing: Path, program, campaigns, at: datetime,
                      outbox: Path, seed: int) -> dict:  # fmt: skip
    with duckdb.connect(str(warehouse)) as con:
        run = decide(con, program, campaigns, at)
        deliver(con, program, at, OutboxGateway(outbox), links=outbox / "links")
        return respond_by_kind(con, landing, seed=seed, run_id=run.run_id)


def learn(root: Path, worlds: int, customers: int, seed: int, program) -> None:
    """The shared world through the learning period, loaded and built as of the policies."""
    landing, warehouse = root / "landing", root / "warehouse.duckdb"
    write_experiment_world(landing, LEARN_AT, worlds=worlds, customers=customers)
    _run_pipeline(landing, warehouse, LEARN_AT)
    learning = [
        _campaign(program, f"learn_w{w:03d}", w, 0.5, targeting={"mode": "uplift"})
        for w in range(worlds)
    ]
    _send_and_respond(warehouse, landing, program, learning, LEARN_AT, root / "outbox", seed)
    _run_pipeline(landing, warehouse, POLICY_AT)


def apply_policy(root: Path, policy: str, worlds: int, seed: int, program) -> pd.DataFrame:
    """One policy on its own copy of the learnt world; per world, what it measured."""
    copy = root / policy
    shutil.copytree(root / "landing", copy / "landing")
    shutil.copy(root / "warehouse.duckdb", copy / "warehouse.duckdb")
    warehouse = copy / "warehouse.duckdb"
    campaigns = policy_campaigns(program, policy, worlds)
    if policy == "uplift":  # the models learn from the learning period's units
        with duckdb.connect(str(warehouse)) as con:
            analyse(con, POLICY_AT, {c.id: c.holdout_share for c in campaigns})
            train_and_score(con, campaigns, program.gross_margin_rate, POLICY_AT)
    at = POLICY_AT + timedelta(hours=1)
    _send_and_respond(warehouse, copy / "landing", program, campaigns, at, copy / "outbox",
                      seed + 1)  # fmt: skip
    _run_pipeline(copy / "landing", warehouse, MEASURE_AT)
    with duckdb.connect(str(warehouse)) as con:
        analyse(con, MEASURE_AT, {c.id: c.holdout_share for c in campaigns})
        qini = measure_uplift(con, campaigns, program.gross_margin_rate, MEASURE_AT)
        measured = per_world(con, program.gross_margin_rate)
    measured["policy"] = policy
    scores = qini[["campaign_id", "qini_coefficient", "ci_low", "ci_high"]]
    merged = measured.merge(scores, on="campaign_id", how="left")
    return merged.astype({"qini_coefficient": float, "ci_low": float, "ci_high": float})


def per_world(con, margin_rate: float) -> pd.DataFrame:
    """Each policy campaign's units: messages, opt-outs, and incremental margin net of the
    texts' cost, treatment arm against holdout (intent to treat: every treated unit, texted
    or not)."""
    return (
        con.execute(
            """WITH u AS (
            SELECT u.campaign_id, u.customer_id, u.arm, u.decision, u.revenue * ? AS margin,
                u.decided_at, d.phone_e164
            FROM experiments.units AS u
            JOIN sends.decisions AS d ON d.campaign_id = u.campaign_id
                AND d.customer_id = u.customer_id AND d.as_of = u.decided_at
            WHERE u.campaign_id LIKE 'policy_w%'),
        stops AS (
            SELECT DISTINCT customer_id FROM raw.consent
            WHERE action = 'opt_out' AND occurred_at > TIMESTAMP '{policy_at}')
        SELECT u.campaign_id,
            count(*) FILTER (WHERE arm = 'treatment') AS treated_units,
            count(*) FILTER (WHERE arm = 'holdout') AS holdout_units,
            count(*) FILTER (WHERE decision = 'sent') AS messages,
            coalesce(sum(m.estimated_cost), 0) AS message_cost,
            count(s.customer_id) FILTER (WHERE decision = 'sent') AS opt_outs,
            avg(margin) FILTER (WHERE arm = 'treatment') AS treated_margin,
            avg(margin) FILTER (WHERE arm = 'holdout') AS holdout_margin
        FROM u
        LEFT JOIN sends.messages AS m ON m.campaign_id = u.campaign_id
            AND m.customer_id = u.customer_id AND u.decision = 'sent'
        LEFT JOIN stops AS s ON s.customer_id = u.customer_id
        GROUP BY u.campaign_id ORDER BY u.campaign_id""".replace(
                "{policy_at}", POLICY_AT.strftime("%Y-%m-%d %H:%M:%S")
            ),
            [margin_rate],
        )
        .df()
        .assign(
            incremental_margin=lambda f: (
                (f.treated_margin - f.holdout_margin) * f.treated_units - f.message_cost
            ),
            per_1000_messages=lambda f: f.incremental_margin / f.messages * 1000,
        )
    )


def _interval(values: np.ndarray) -> tuple[float, float, float]:
    values = values[np.isfinite(values)]
    mean = float(values.mean())
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return mean, mean - half, mean + half


def summarise(rows: pd.DataFrame) -> dict:
    table = {}
    for policy in POLICIES:
        mine = rows[rows.policy == policy]
        table[policy] = {
            metric: _interval(mine[metric].to_numpy(float))
            for metric in ("per_1000_messages", "incremental_margin", "messages", "opt_outs")
        }
    wide = rows.pivot(index="world", columns="policy", values="per_1000_messages")
    table["uplift_minus_send_to_all"] = {
        "per_1000_messages": _interval((wide["uplift"] - wide["send_to_all"]).to_numpy(float))
    }
    qini = rows[rows.policy == "uplift"].qini_coefficient.to_numpy(float)
    table["uplift_qini_coefficient"] = {"per_world": _interval(qini)}
    return table


def run_loop(root: Path, worlds: int, customers: int, seed: int) -> tuple[pd.DataFrame, dict]:
    program = replace(load_program(), global_control_share=0.0)
    learn(root, worlds, customers, seed, program)
    rows = []
    for policy in POLICIES:
        rows.append(apply_policy(root, policy, worlds, seed, program))
    frame = pd.concat(rows, ignore_index=True)
    frame["world"] = frame.campaign_id.str[-3:].astype(int)
    return frame, summarise(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, default=12)
    parser.add_argument("--customers", type=int, default=1600)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        frame, table = run_loop(Path(folder), args.worlds, args.customers, args.seed)
    seconds = time.perf_counter() - started
    print(f"{args.worlds} worlds x {args.customers:,} customers, {seconds:.0f} s")
    print("| policy | incremental margin per 1,000 messages, USD | messages | opt-outs |")
    print("| --- | ---: | ---: | ---: |")
    for policy in POLICIES:
        t = table[policy]
        print(f"| {policy} | " + " | ".join(
            f"{m:,.1f} [{lo:,.1f}, {hi:,.1f}]" for m, lo, hi in (
                t["per_1000_messages"], t["messages"], t["opt_outs"])) + " |")  # fmt: skip
    m, lo, hi = table["uplift_minus_send_to_all"]["per_1000_messages"]
    print(f"uplift - send_to_all, per 1,000 messages: {m:,.1f} [{lo:,.1f}, {hi:,.1f}]")
    m, lo, hi = table["uplift_qini_coefficient"]["per_world"]
    print(f"Qini coefficient of the uplift models (USD per unit): {m:.3f} [{lo:.3f}, {hi:.3f}]")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "uplift-loop.json").write_text(json.dumps({
        "worlds": args.worlds, "customers": args.customers, "seed": args.seed,
        "seconds": round(seconds, 1), "summary": table,
        "per_world": frame.to_dict(orient="records"),
    }, indent=2, default=str) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
