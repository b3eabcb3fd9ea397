import os
from datetime import date
from pathlib import Path

import pytest

# The daily partitions must cover the small worlds the tests simulate.
os.environ.setdefault("RETENTEXT_PARTITIONS_START", "2024-01-01")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from hypothesis import settings  # noqa: E402

from simulator.writer import simulate  # noqa: E402

# property tests: a few hundred random worlds in `make test`, 10,000 in `make soak`
settings.register_profile("default", max_examples=200)
settings.register_profile("soak", max_examples=10_000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

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


SEND_WORLD = {"customers": 2500, "start": date(2025, 1, 1), "days": 150, "seed": 21}
SEND_AS_OF = "2025-05-31T15:00:00Z"  # the day after the last landing day, 11:00 in New York


@pytest.fixture(scope="session")
def send_warehouse(tmp_path_factory) -> Path:
    """A warehouse built by the real pipeline (ingest + dbt) for the send jobs to read;
    tests copy it so each starts from the same state."""
    from orchestration.cli import main

    root = tmp_path_factory.mktemp("send_world")
    simulate(root / "landing", **SEND_WORLD)
    warehouse = root / "warehouse.duckdb"
    code = main(
        ["run", "--landing", str(root / "landing"), "--as-of", SEND_AS_OF,
         "--warehouse", str(warehouse)]
    )  # fmt: skip
    assert code == 0
    return warehouse
