"""A real Dagster instance for tests: a temporary DAGSTER_HOME with the repository's
dagster.yaml, the real ``dagster-daemon`` started on it, and what the tests read back (runs
and materialisations)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"


def free_port() -> int:
    """A loopback port free now (for a server the test starts at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dagster_home(folder: Path) -> Path:
    """A DAGSTER_HOME set up as ``make dagster`` sets up data/dagster/."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dagster.yaml").symlink_to(REPO / "deploy" / "dagster.yaml")
    subprocess.run(
        [BIN / "dagster", "instance", "concurrency", "set", "warehouse", "1"],
        env={**os.environ, "DAGSTER_HOME": str(folder)},
        check=True,
        capture_output=True,
    )
    return folder


def pipeline_env(home: Path, **settings: str) -> dict[str, str]:
    """The environment of a deployment: this process's, without the RETENTEXT_* settings a
    developer may have exported, plus DAGSTER_HOME and ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETENTEXT_")}
    return {**env, "DAGSTER_HOME": str(home), **settings}


@contextmanager
def running_daemon(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """The real dagster-daemon on the code location, stopped (with its runs) afterwards."""
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [BIN / "dagster-daemon", "run", "-m", "orchestration.definitions"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            yield daemon
        finally:
            os.killpg(daemon.pid, 15)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, 9)
                daemon.wait()


def instance_at(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home))


def wait_until(
    what: str,
    predicate: Callable[[], object],
    timeout: float,
    log: Path,
    instance: dg.DagsterInstance | None = None,
):
    """``predicate``'s first truthy value, polled; on timeout the instance's runs and the
    daemon's log tail say why."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1.0)
    runs = run_timeline(instance) if instance else ""
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{runs}\n{tail}")


def run_timeline(instance: dg.DagsterInstance) -> str:
    """One line per run, oldest first: job, status, trigger, queued/start/end times."""

    def clock(ts: float | None) -> str:
        return time.strftime("%H:%M:%S", time.gmtime(ts)) if ts else "-"

    lines = []
    for record in reversed(instance.get_run_records(limit=200)):
        tags = record.dagster_run.tags
        trigger = (
            tags.get("dagster/sensor_name")
            or tags.get("dagster/schedule_name")
            or ("automation" if tags.get("dagster/auto_materialize") else "manual")
        )
        assets = sorted("/".join(k.path) for k in record.dagster_run.asset_selection or ())
        shown = f"{assets[0]} and {len(assets) - 1} more" if len(assets) > 1 else "".join(assets)
        lines.append(
            f"{record.dagster_run.job_name} ({shown}) {record.dagster_run.status.value} {trigger} "
            f"created {clock(record.create_timestamp.timestamp())} "
            f"start {clock(record.start_time)} end {clock(record.end_time)}"
        )
        if record.dagster_run.status == dg.DagsterRunStatus.FAILURE:
            lines += [f"  {why}" for why in _failure_messages(instance, record.dagster_run.run_id)]
    return "runs:\n" + "\n".join(lines)


def _failure_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """What the engine and the daemon said about a failed run (why it failed, or never
    started)."""
    kinds = {"ENGINE_EVENT", "PIPELINE_FAILURE", "STEP_FAILURE"}
    return [
        (e.message or "")[:300]
        for e in instance.all_logs(run_id)
        if e.dagster_event
        and e.dagster_event.event_type_value in kinds
        and ("fail" in (e.message or "").lower() or "error" in (e.message or "").lower())
    ]


def materializations(instance: dg.DagsterInstance, *key: str) -> list[dg.EventLogRecord]:
    """Every materialisation of the asset ``key``, oldest first."""
    records = instance.fetch_materializations(dg.AssetKey(list(key)), limit=1000).records
    return sorted(records, key=lambda r: r.storage_id)


def metadata(record: dg.EventLogRecord) -> dict:
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def failed_runs(instance: dg.DagsterInstance) -> list[str]:
    runs = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
    return [f"{r.job_name} {r.run_id}" for r in runs]
