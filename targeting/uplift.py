"""Uplift targeting: each customer's predicted incremental margin from a campaign's text,
learned from the campaign's own randomised decisions (and those of the earlier campaigns its
``targeting.learn_from`` names).

Training units are the campaigns' holdout (not texted) and the treated units that were texted
whatever a model said: before any model (``no_model``), from a campaign that texted its whole
audience, and the random ``learning`` share. So both arms are random samples of the audience.
The outcome is the margin in the attribution window (net revenue x the program's gross margin
rate); the covariates are only what the decision saw (``sends.decisions``).

The learner is a T-learner: one gradient-boosted regression of the margin per arm, the
prediction their difference. After each analysis every customer is scored with the
covariates of the latest features build (``predictions.campaign_uplift``), which the next
decisions read; ``predictions.uplift_models`` records each training, or why there was none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from send_jobs.audience import CUSTOMERS_AT_DECISION, PRE_PERIOD_SQL

CATEGORICAL = ("lifecycle_stage", "loyalty_tier", "rfm_segment")
NUMERIC = (
    "pre_period_revenue",
    "orders_count",
    "lifetime_revenue",
    "days_since_last_order",
    "probability_alive",
    "expected_revenue_90d",
)
# fewer units than this in either arm: no model (the policy texts as a campaign without it)
MIN_UNITS_PER_ARM = 200
RANDOMISED_TREATED = ("learning", "no_model")  # plus NULL: a campaign that texted everyone

TABLES_SQL = """
CREATE SCHEMA IF NOT EXISTS predictions;
CREATE TABLE IF NOT EXISTS predictions.campaign_uplift (
    campaign_id VARCHAR NOT NULL,
    customer_id VARCHAR NOT NULL,
    predicted_incremental_margin DOUBLE NOT NULL,  -- USD over the attribution window
    as_of TIMESTAMP NOT NULL,                      -- the model's training time
    PRIMARY KEY (campaign_id, customer_id)
);
CREATE TABLE IF NOT EXISTS predictions.uplift_models (
    as_of TIMESTAMP NOT NULL,
    campaign_id VARCHAR NOT NULL,
    status VARCHAR NOT NULL,        -- trained or not_trained
    reason VARCHAR,
    treated_units BIGINT NOT NULL,
    control_units BIGINT NOT NULL,
    scored_customers BIGINT NOT NULL,
    PRIMARY KEY (as_of, campaign_id)
);
"""


def ensure_tables(con) -> None:
    con.execute(TABLES_SQL)


class TLearner:
    """Two gradient-boosted regressions, treated and control; uplift = their difference.
    Categorical covariates keep the categories seen in training (others count as missing);
    numeric ones missing for every training unit are left out."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.categories: dict[str, list] = {}
        self.numeric: list[str] = []
        self.models: dict[bool, HistGradientBoostingRegressor] = {}

    def _matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        columns = {c: pd.Categorical(frame[c], categories=self.categories[c]) for c in CATEGORICAL}
        columns |= {c: pd.to_numeric(frame[c], errors="coerce").astype(float)
                    for c in self.numeric}  # fmt: skip
        return pd.DataFrame(columns, index=frame.index)

    def fit(self, frame: pd.DataFrame, treated, outcome) -> TLearner:
        treated = np.asarray(treated, bool)
        outcome = np.asarray(outcome, float)
        self.categories = {c: sorted(frame[c].dropna().unique()) for c in CATEGORICAL}
        # a covariate no training unit has (say, no predicted value yet) says nothing
        self.numeric = [
            c for c in NUMERIC if pd.to_numeric(frame[c], errors="coerce").notna().any()
        ]
        matrix = self._matrix(frame)
        for arm in (True, False):
            model = HistGradientBoostingRegressor(
                max_iter=150, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=40,
                l2_regularization=1.0, categorical_features="from_dtype",
                early_stopping=False, random_state=self.seed,
            )  # fmt: skip
            self.models[arm] = model.fit(matrix[treated == arm], outcome[treated == arm])
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        matrix = self._matrix(frame)
        return self.models[True].predict(matrix) - self.models[False].predict(matrix)


@dataclass(frozen=True)
class ModelRecord:
    campaign_id: str
    status: str
    reason: str | None
    treated_units: int
    control_units: int
    scored_customers: int


def training_units(con, campaign_ids: list[str], margin_rate: float) -> pd.DataFrame:
    """The campaigns' randomised units (experiments.units, built by the analysis) with
    ``treated`` and ``margin``."""
    listed = ", ".join(f"'{t}'" for t in RANDOMISED_TREATED)
    return con.execute(
        f"""SELECT *, arm = 'treatment' AS treated, revenue * ? AS margin
            FROM experiments.units
            WHERE list_contains(?, campaign_id) AND (arm = 'holdout' OR (arm = 'treatment'
                AND (targeting IS NULL OR targeting IN ({listed}))))
            ORDER BY campaign_id, customer_id""",
        [margin_rate, campaign_ids],
    ).df()


def customers_now(con, as_of: datetime) -> pd.DataFrame:
    """Every customer with the covariates a decision at ``as_of`` would record."""
    return con.execute(
        f"""SELECT d.customer_id, {", ".join(f"d.{c}" for c in CATEGORICAL)},
                coalesce(p.revenue, 0) AS pre_period_revenue,
                {", ".join(f"d.{c}" for c in NUMERIC if c != "pre_period_revenue")}
            FROM ({CUSTOMERS_AT_DECISION}) AS d
            LEFT JOIN ({PRE_PERIOD_SQL}) AS p USING (customer_id)
            ORDER BY d.customer_id""",
        {"as_of": as_of.replace(tzinfo=None)},
    ).df()


def train_and_score(con, campaigns, margin_rate: float, as_of: datetime,
                    seed: int = 0) -> list[ModelRecord]:  # fmt: skip
    """Train each uplift-targeted campaign's model on its randomised units and score every
    customer; a campaign with too few units keeps its earlier scores (or none)."""
    ensure_tables(con)
    as_of_naive = as_of.replace(tzinfo=None)
    records, people = [], None
    for campaign in (c for c in campaigns if c.targeting.mode == "uplift"):
        units = training_units(con, [campaign.id, *campaign.targeting.learn_from], margin_rate)
        n_t, n_c = int(units.treated.sum()), int((~units.treated).sum())
        if min(n_t, n_c) < MIN_UNITS_PER_ARM:
            why = (
                f"{n_t} texted and {n_c} held-out randomised units; needs {MIN_UNITS_PER_ARM} each"
            )
            records.append(ModelRecord(campaign.id, "not_trained", why, n_t, n_c, 0))
            continue
        model = TLearner(seed).fit(units, units.treated, units.margin)
        people = customers_now(con, as_of) if people is None else people
        scores = pd.DataFrame({"customer_id": people.customer_id,
                               "predicted": model.predict(people)})  # fmt: skip
        _replace_scores(con, campaign.id, scores, as_of_naive)
        records.append(ModelRecord(campaign.id, "trained", None, n_t, n_c, len(scores)))
    for r in records:
        con.execute(
            "INSERT OR REPLACE INTO predictions.uplift_models VALUES (?, ?, ?, ?, ?, ?, ?)",
            [as_of_naive, r.campaign_id, r.status, r.reason, r.treated_units,
             r.control_units, r.scored_customers],
        )  # fmt: skip
    return records


def _replace_scores(con, campaign_id: str, scores: pd.DataFrame, as_of: datetime) -> None:
    con.register("scores", scores)
    try:
        con.execute("BEGIN")
        con.execute("DELETE FROM predictions.campaign_uplift WHERE campaign_id = ?", [campaign_id])
        con.execute(
            """INSERT INTO predictions.campaign_uplift
               SELECT ?, customer_id, predicted, ? FROM scores""",
            [campaign_id, as_of],
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("scores")
