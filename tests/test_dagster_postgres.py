"""Dagster's production storage: deploy/postgres/dagster.yaml against Debian's PostgreSQL
server, started on loopback for the test. A materialisation through the dagster CLI lands
its run and events in PostgreSQL."""

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster_instance import BIN, REPO, free_port, pipeline_env

from .test_ingest import GOOD, ORDERS_HEADER, write

pytestmark = pytest.mark.xdist_group("postgres")


def _as_postgres(*args, **kwargs) -> subprocess.CompletedProcess:
    """PostgreSQL refuses to run as root: its tools run as Debian's postgres user."""
    return subprocess.run(["runuser", "-u", "postgres", "--", *map(str, args)],
                          capture_output=True, text=True, timeout=120, **kwargs)  # fmt: skip


@pytest.fixture
def postgres() -> Iterator[dict[str, str]]:
    """A PostgreSQL server on 127.0.0.1 with a password-protected database for Dagster."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL is not installed: run `make postgres` (Debian postgresql)")
    bin_dir = Path(found[-1]).parent
    folder = Path(tempfile.mkdtemp(prefix="retentext-pg-"))  # postgres must reach it
    folder.chmod(0o755)
    shutil.chown(folder, "postgres", "postgres")
    (folder / "pw").write_text("dagster-test-password\n")
    port = free_port()
    done = _as_postgres(bin_dir / "initdb", "-D", folder / "data", "-U", "dagster",
                        "--pwfile", folder / "pw", "--auth-local=trust",
                        "--auth-host=scram-sha-256")  # fmt: skip
    assert done.returncode == 0, done.stderr
    start = _as_postgres(
        bin_dir / "pg_ctl", "-D", folder / "data", "-l", folder / "server.log", "-w", "start",
        "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1",
    )  # fmt: skip
    assert start.returncode == 0, start.stderr + (folder / "server.log").read_text()
    try:
        env = {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(port),
               "DAGSTER_PG_USER": "dagster", "DAGSTER_PG_PASSWORD": "dagster-test-password",
               "DAGSTER_PG_DB": "dagster"}  # fmt: skip
        created = _as_postgres(bin_dir / "createdb", "-h", folder, "-p", port, "-U", "dagster",
                               "dagster")  # fmt: skip
        assert created.returncode == 0, created.stderr
        yield {**env, "PSQL": str(bin_dir / "psql")}
    finally:
        _as_postgres(bin_dir / "pg_ctl", "-D", folder / "data", "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_runs_and_asset_history_are_stored_in_postgresql(tmp_path, postgres):
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").symlink_to(REPO / "deploy" / "postgres" / "dagster.yaml")
    landing = tmp_path / "landing"
    write(landing, "orders/2025-01-02.csv", f"{ORDERS_HEADER}\n{GOOD}\n")
    psql = postgres.pop("PSQL")
    env = pipeline_env(
        home, **postgres,
        RETENTEXT_WAREHOUSE=str(tmp_path / "w.duckdb"), RETENTEXT_LANDING=str(landing),
        RETENTEXT_PARTITIONS_START="2025-01-01",
    )  # fmt: skip
    done = subprocess.run(
        [BIN / "dagster", "asset", "materialize", "-m", "orchestration.definitions",
         "--select", "raw/orders", "--partition", "2025-01-02"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    def query(sql: str) -> str:
        out = subprocess.run(
            [psql, "-h", "127.0.0.1", "-p", postgres["DAGSTER_PG_PORT"], "-U", "dagster",
             "-d", "dagster", "-At", "-c", sql],
            env={**os.environ, "PGPASSWORD": postgres["DAGSTER_PG_PASSWORD"]},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert query("SELECT status FROM runs") == "SUCCESS"
    materialized = query(
        "SELECT partition FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
        'AND asset_key = \'["raw", "orders"]\''
    )
    assert materialized == "2025-01-02"
    assert not (home / "history").exists()  # nothing went to SQLite beside it
