"""The closed loop the experiment tests run: simulated shops written as landing files, loaded
and built by ``retentext run`` as of the decision, and again once the world has responded
(its orders are landing files too), so the analysis reads marts the features build made."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from orchestration.cli import main


def run_pipeline(landing: Path, warehouse: Path, as_of: datetime) -> None:
    """``retentext run``: load every complete landing day before ``as_of``, build the features."""
    code = main(["run", "--landing", str(landing), "--warehouse", str(warehouse),
                 "--as-of", as_of.isoformat()])  # fmt: skip
    assert code == 0, f"retentext run as of {as_of} failed"
