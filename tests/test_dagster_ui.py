"""The documented way to run it in Dagster: `make dagster` in a clean folder with default
settings starts the webserver and the daemon; headless Chromium reads the UI's asset lineage
and asset pages: the groups, the descriptions (not raw SQL) and the checks are there."""

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest
from dagster_instance import REPO, free_port

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dagster-ui")]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def dagster_ui(tmp_path_factory):
    """`make dagster` in a folder holding only what a clone has at its top (the venv is
    shared), with no RETENTEXT_* or DAGSTER_HOME set. Started once per run: the suite's
    slow-first ordering interleaves modules, so a module fixture was started three times."""
    folder = tmp_path_factory.mktemp("clean") / "project"
    folder.mkdir()
    for name in ("Makefile", "pyproject.toml", ".venv", "deploy"):
        (folder / name).symlink_to(REPO / name)
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RETENTEXT_") and k != "DAGSTER_HOME"}  # fmt: skip
    log = folder / "make-dagster.log"
    with log.open("wb") as out:
        server = subprocess.Popen(["make", "dagster", f"DAGSTER_PORT={port}"], cwd=folder,
                                  env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not _answers(f"{url}/server_info"):
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        yield url, folder, log
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def page_text(url: str) -> str:
    """What the page shows once its scripts ran: the DOM headless Chromium renders, as
    text."""
    assert CHROMIUM, "chromium is not installed: run `make chromium`"
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--virtual-time-budget=30000", "--dump-dom", url],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    html = re.sub(r"<script.*?</script>|<style.*?</style>", " ", done.stdout, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_make_dagster_prints_the_url_and_keeps_history_under_data(dagster_ui):
    url, folder, log = dagster_ui
    assert f"Dagster UI: {url}" in log.read_text()
    home = folder / "data" / "dagster"
    assert (home / "dagster.yaml").resolve() == REPO / "deploy" / "dagster.yaml"
    assert (home / "history").is_dir() or (home / "storage").is_dir()  # SQLite, on disk


def test_the_lineage_shows_the_four_groups(dagster_ui):
    url, _, _ = dagster_ui
    text = page_text(f"{url}/asset-groups")
    for group in ("ingest", "features", "sends", "experiments"):
        assert f" {group} " in text, group


def test_an_ingest_asset_shows_its_description_group_and_checks(dagster_ui):
    url, _, _ = dagster_ui
    overview = page_text(f"{url}/assets/raw/consent")
    assert "Landing files of consent validated into raw.consent" in overview
    assert "Group ingest" in overview and "DuckDB" in overview
    assert "landing_sensor" in overview
    checks = page_text(f"{url}/assets/raw/consent?view=checks")
    for check in ("great_expectations", "quarantine_share", "freshness_check"):
        assert check in checks, check


def test_a_mart_shows_its_own_description_not_its_sql(dagster_ui):
    url, _, _ = dagster_ui
    overview = page_text(f"{url}/assets/marts/dim_customers")
    assert "One row per customer known at as_of" in overview
    assert "Raw SQL" not in overview and "select " not in overview.lower()
    assert "Group features" in overview
    checks = page_text(f"{url}/assets/marts/dim_customers?view=checks")
    assert "freshness_check" in checks
    assert "unique_dim_customers_customer_id" in checks  # a dbt test as an asset check
