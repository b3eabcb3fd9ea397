"""How well each uplift-targeted campaign's model ranks customers, on units it had not seen:
the Qini curve and coefficient (``targeting/qini.py``) of the predicted incremental margin
each decision recorded, over the randomised units decided while a model was in use (the
holdout, and the random learning share that was texted whatever the model said). The model
behind each prediction was trained on the units before it, so this is a later randomised
period. Writes ``experiments.uplift_evaluation`` (one row per campaign) and
``experiments.qini_curves`` (the curve at every 1% of the units, for the report)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from targeting.qini import qini

CURVE_POINTS = 101
TABLES_SQL = """
CREATE SCHEMA IF NOT EXISTS experiments;
CREATE OR REPLACE TABLE experiments.uplift_evaluation (campaign_id VARCHAR, as_of TIMESTAMP,
    treated_units BIGINT, control_units BIGINT, qini_coefficient DOUBLE, ci_low DOUBLE,
    ci_high DOUBLE);
CREATE OR REPLACE TABLE experiments.qini_curves (campaign_id VARCHAR, fraction DOUBLE,
    qini DOUBLE);
"""


def evaluation_units(con, campaign_id: str, margin_rate: float) -> pd.DataFrame:
    return con.execute(
        """SELECT arm = 'treatment' AS treated, predicted_uplift, revenue * ? AS margin
           FROM experiments.units
           WHERE campaign_id = ? AND predicted_uplift IS NOT NULL
             AND (arm = 'holdout' OR (arm = 'treatment' AND targeting = 'learning'))
           ORDER BY customer_id""",
        [margin_rate, campaign_id],
    ).df()


def measure_uplift(con, campaigns, margin_rate: float, as_of: datetime,
                   bootstrap: int = 200) -> pd.DataFrame:  # fmt: skip
    """One row per uplift-targeted campaign: units evaluated, the Qini coefficient (USD of
    margin per unit) and its bootstrap interval; NaN with fewer than 2 units in an arm."""
    rows, curves = [], []
    for campaign in (c for c in campaigns if c.targeting.mode == "uplift"):
        units = evaluation_units(con, campaign.id, margin_rate)
        n_t, n_c = int(units.treated.sum()), int((~units.treated).sum())
        row = {"campaign_id": campaign.id, "as_of": as_of.replace(tzinfo=None),
               "treated_units": n_t, "control_units": n_c, "qini_coefficient": np.nan,
               "ci_low": np.nan, "ci_high": np.nan}  # fmt: skip
        if min(n_t, n_c) >= 2:
            q = qini(units.predicted_uplift, units.treated, units.margin, bootstrap=bootstrap)
            row |= {"qini_coefficient": q.coefficient, "ci_low": q.ci_low, "ci_high": q.ci_high}
            fractions = np.linspace(0, 1, CURVE_POINTS)
            at = np.interp(fractions * q.units[-1], q.units, q.curve)
            curves += [{"campaign_id": campaign.id, "fraction": f, "qini": v}
                       for f, v in zip(fractions, at, strict=True)]  # fmt: skip
        rows.append(row)
    evaluation = pd.DataFrame(rows, columns=[
        "campaign_id", "as_of", "treated_units", "control_units", "qini_coefficient",
        "ci_low", "ci_high"])  # fmt: skip
    curve = pd.DataFrame(curves, columns=["campaign_id", "fraction", "qini"])
    con.execute(TABLES_SQL)
    for name, frame in (("uplift_evaluation", evaluation), ("qini_curves", curve)):
        if len(frame):
            con.register("frame", frame)
            con.execute(f"INSERT INTO experiments.{name} BY NAME SELECT * FROM frame")
            con.unregister("frame")
    return evaluation
