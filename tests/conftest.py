import os
from datetime import date
from pathlib import Path

import pytest

# The daily partitions must cover the small worlds the tests simulate.
os.environ.setdefault("RETENTEXT_PARTITIONS_START", "2024-01-01")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from simulator.writer import simulate  # noqa: E402

WORLD = {"customers": 1500, "start": date(2025, 1, 1), "days": 45, "seed": 11}


@pytest.fixture(scope="session")
def clean_world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean") / "landing"
    simulate(out, **WORLD)
    return out


@pytest.fixture(scope="session")
def bad_world(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("bad") / "landing"
    summary = simulate(out, **WORLD, bad_rows=0.01)
    return out, summary
