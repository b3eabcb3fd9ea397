import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from filelock import FileLock

# pytest-xdist workers run with a __main__ that has no __file__; pyspark.sql.connect (which
# Great Expectations imports) takes that for a doctest run and calls sys.exit(0)
if not hasattr(sys.modules["__main__"], "__file__"):
    sys.modules["__main__"].__file__ = __file__

# The daily partitions must cover the small worlds the tests simulate.
os.environ.setdefault("RETENTEXT_PARTITIONS_START", "2024-01-01")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from hypothesis import settings  # noqa: E402

from simulator.writer import simulate  # noqa: E402

# property tests: a few hundred random worlds in `make test`, 10,000 in `make soak`
settings.register_profile("default", max_examples=200)
# RETENTEXT_SOAK_WORLDS: a shorter soak, e.g. to re-check a change before the full hour
settings.register_profile("soak", max_examples=int(os.environ.get("RETENTEXT_SOAK_WORLDS", 10_000)))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first (longest-first scheduling): one left for the end would keep a
    worker busy alone while the other idles."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def port_range_start(base: int) -> int:
    """A loopback port range of this pytest-xdist worker's own (gw0, gw1, ...), so two
    workers starting a Kannel at once do not race for the same free ports."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return base + 2000 * int(worker.removeprefix("gw") or 0)


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


def running_clock(start: datetime) -> Callable[[], datetime]:
    """A hand-over clock that starts at ``start`` and runs with real time, as a live send's
    wall clock would (its grace periods pass) while staying on the test's calendar."""
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - origin)


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder that the first pytest-xdist worker to ask builds and the others reuse (the
    pattern from pytest-xdist's docs): a slow session fixture costs one build per run, not
    one per worker. Callers copy what they change."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's folder, above every worker's own
    root = shared / name
    with FileLock(f"{root}.lock"):
        if not (root / ".built").exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            build(root)
            (root / ".built").touch()
    return root


@pytest.fixture(scope="session")
def send_warehouse(tmp_path_factory) -> Path:
    """A warehouse built by the real pipeline (ingest + dbt) for the send jobs to read;
    tests copy it so each starts from the same state."""
    from orchestration.cli import main

    def build(root: Path) -> None:
        simulate(root / "landing", **SEND_WORLD)
        code = main(
            ["run", "--landing", str(root / "landing"), "--as-of", SEND_AS_OF,
             "--warehouse", str(root / "warehouse.duckdb")]
        )  # fmt: skip
        assert code == 0

    return built_once(tmp_path_factory, "send_world", build) / "warehouse.duckdb"


@pytest.fixture
def small_disk():
    """Mounts a tmpfs of a given size (a disk that fills up); unmounted after the test."""
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True)  # fmt: skip
        if done.returncode:
            pytest.fail(f"cannot mount a small tmpfs (needs root): {done.stderr.decode()}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        for _ in range(50):
            if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)


@pytest.fixture
def send_con(send_warehouse, tmp_path):
    """A connection to this test's own copy of the send world's warehouse."""
    import duckdb

    path = tmp_path / "warehouse.duckdb"
    shutil.copy(send_warehouse, path)
    con = duckdb.connect(str(path))
    yield con
    con.close()
