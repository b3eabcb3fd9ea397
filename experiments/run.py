"""The measurement flow, as both the CLI and the Dagster experiments asset run it: every
campaign against its holdout as of a time, its guardrail metrics and click-through, the
program as a whole
against the global control, the LTV cohorts, and the HTML reports."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from experiments.analysis import analyse, variant_winners
from experiments.clicks import measure_clicks
from experiments.cohorts import build_cohorts
from experiments.guardrails import flagged_rates, measure_guardrails
from experiments.program import measure_program
from experiments.reports import write_reports
from experiments.uplift import measure_uplift
from send_jobs.campaign_specs import Campaign, Program, load_campaigns, load_program
from send_jobs.ledger import ensure_schema
from targeting.uplift import ModelRecord, train_and_score


@dataclass
class Measurement:
    results: pd.DataFrame  # experiments.campaign_results
    guardrails: pd.DataFrame  # experiments.campaign_guardrails
    program: pd.DataFrame  # experiments.program_results (empty before any marketing text)
    clicks: pd.DataFrame  # experiments.click_through
    units: int
    cohort_rows: int
    seconds: float
    uplift: pd.DataFrame  # experiments.uplift_evaluation (uplift-targeted campaigns)
    uplift_models: list[ModelRecord]  # this analysis's training of each uplift model

    @property
    def variant_winners(self) -> dict[str, str | None]:
        """Per campaign with several variants, the winner under ``WINNER_RULE`` or None."""
        return variant_winners(self.results) if len(self.results) else {}

    @property
    def guardrail_flags(self) -> list[str]:
        """``campaign: rate`` for each guardrail worse than the program's norm."""
        return [f"{row.campaign_id}: {rate} {value:.2%} (program {norm:.2%})"
                for _, row in self.guardrails.iterrows()
                for rate, value, norm in flagged_rates(row)]  # fmt: skip

    @property
    def sample_ratio_mismatch(self) -> list[str]:
        """Campaigns whose arms are out of their planned ratio (results untrustworthy)."""
        if self.results.empty:
            return []
        return sorted(set(self.results.loc[self.results.srm_flag, "campaign_id"]))


def measure(con, as_of: datetime, window_days: int = 7,
            campaigns_dir: Path | None = None) -> Measurement:  # fmt: skip
    """Analyse every campaign's holdout and the LTV cohorts as of ``as_of``. A shop that has
    not sent anything yet has the ledger's tables empty: no units, not an error."""
    started = time.perf_counter()
    ensure_schema(con)
    program = load_program()
    campaigns = load_campaigns(campaigns_dir, program=program)
    shares = {c.id: c.holdout_share for c in campaigns}
    planned = planned_units(campaigns, program)
    results = analyse(con, as_of, shares, window_days, planned)
    guardrails = measure_guardrails(con, as_of)
    clicks = measure_clicks(con, as_of, planned)
    whole = measure_program(con, as_of, program)
    models = train_and_score(con, campaigns, program.gross_margin_rate, as_of)
    uplift = measure_uplift(con, campaigns, program.gross_margin_rate, as_of)
    units = con.execute("SELECT count(*) FROM experiments.units").fetchone()[0]
    cohort_rows = build_cohorts(con, as_of)
    seconds = time.perf_counter() - started
    return Measurement(results, guardrails, whole, clicks, units, cohort_rows, seconds,
                       uplift, models)  # fmt: skip


def planned_units(campaigns: list[Campaign], program: Program) -> dict[str, int]:
    """Each campaign's planned size: its own ``planned_units``, else the program's
    ``measurement.sequential_tuning``."""
    return {c.id: c.planned_units or program.sequential_tuning for c in campaigns}


def report(con, folder: Path, as_of: datetime,
           campaigns_dir: Path | None = None) -> dict[str, Path]:  # fmt: skip
    """The overview, the campaign pages, incrementality.html and cohorts.html under
    ``folder``."""
    program = load_program()
    planned = planned_units(load_campaigns(campaigns_dir, program=program), program)
    return write_reports(con, folder, f"{as_of:%Y-%m-%d %H:%M} UTC", planned)
