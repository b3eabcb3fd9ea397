"""Running the dbt feature build (no Dagster): the as_of var, threads, parse states, build
folders, the manifest, and the one place that hands dbt its settings through environment
variables (its profile and the as_of macro read them)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from warehouse.settings import WAREHOUSE_ENV
from warehouse.tool_env import scoped_env

DBT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"

AS_OF_ENV = "RETENTEXT_AS_OF"  # read by macros/as_of.sql when a node runs, not when dbt parses
PARTIAL_PARSE = "partial_parse.msgpack"
PARSE_STATES = "parse_states"  # under target/: one dbt parse state per warehouse
KEPT_PARSE_STATES = 10  # ~1 MB each; the test suite builds into dozens of warehouses


def as_of_var(text: str) -> str:
    """An ISO timestamp with a zone -> dbt's as_of, 'YYYY-MM-DD HH:MM:SS' in UTC: the value
    of ``AS_OF_ENV`` for Dagster's builds, of the var for the engine comparison's."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"as_of {text!r} has no time zone; add Z or an offset")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def dbt_threads(warehouse_has_marts: bool, override: int | None = None) -> int:
    """dbt threads for a build: ``override`` (``RETENTEXT_DBT_THREADS``) when set, else 1 for
    a first build (no marts yet) and 2 after. DuckDB runs every query on all cores: a first
    build is a few large queries, which a second dbt thread only makes share them (and peak
    memory grows); a nightly build is a hundred small queries and tests, whose per-node dbt
    overhead a second thread overlaps (benchmarks/README.md has the figures)."""
    if override is not None:
        return override
    return 2 if warehouse_has_marts else 1


def dbt_env(warehouse: str, as_of: str | None):
    """The warehouse path (profiles.yml) and the build's as_of (macros/as_of.sql) for the dbt
    subprocess started inside: dbt reads both from the environment, and as_of travels there
    rather than in --vars because changed vars make dbt parse the whole project. No as_of:
    a build of the seeds alone, which do not read it.

    A build of part of the graph runs only the tests whose every parent it builds ("cautious"
    indirect selection): a build of the seeds alone must not run the relationship tests from
    a mart that does not exist yet."""
    values = {WAREHOUSE_ENV: warehouse, "DBT_INDIRECT_SELECTION": "cautious"}
    if as_of is not None:
        values[AS_OF_ENV] = as_of_var(as_of)
    return scoped_env(values)


KEPT_BUILD_FOLDERS = 10  # dbt.log, compiled SQL and run_results of the last builds (~6 MB each)


def prune_build_folders(target: Path, prefix: str, keep: int = KEPT_BUILD_FOLDERS) -> list[Path]:
    """Delete all but the newest ``keep`` of dagster-dbt's per-build folders
    (``target/<prefix>-<run>-<id>``), which it never removes: a nightly pipeline would
    otherwise grow its target folder by one every build. Returns the folders deleted."""
    folders = sorted(
        (p for p in target.glob(f"{prefix}-*") if p.is_dir()),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for folder in folders[keep:]:
        shutil.rmtree(folder, ignore_errors=True)  # another process may be pruning too
    return folders[keep:]


def parse_state(target: Path, warehouse: str) -> Path:
    """Where the parse state of the builds into ``warehouse`` is kept. dbt parses the whole
    project again when its profile (which names the warehouse) differs from the state's, so
    each warehouse keeps its own: tests and the demo build into others in between."""
    key = hashlib.sha256(str(Path(warehouse).resolve()).encode()).hexdigest()[:16]
    return target / PARSE_STATES / f"{key}.msgpack"


def restore_partial_parse(state: Path, build_target: Path) -> bool:
    """Put the warehouse's parse state into a build's folder before dbt starts, so dbt
    re-parses only the files that changed (about 5 s less a build). False if none is kept."""
    if not state.exists():
        return False
    build_target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(state, build_target / PARTIAL_PARSE)
    return True


def keep_partial_parse(build_target: Path, state: Path, keep: int = KEPT_PARSE_STATES) -> bool:
    """Keep a build's parse state for the next build into the same warehouse, replaced
    atomically (two builds may finish together); the states of all but the newest ``keep``
    warehouses go. False if the build left none."""
    built = build_target / PARTIAL_PARSE
    if not built.exists():
        return False
    state.parent.mkdir(parents=True, exist_ok=True)
    staged = state.with_name(f".{state.name}.{os.getpid()}")
    shutil.copyfile(built, staged)
    os.replace(staged, state)
    states = sorted(state.parent.glob("*.msgpack"), key=lambda p: p.stat().st_mtime)
    for old in states[:-keep]:
        old.unlink(missing_ok=True)
    return True


def dbt_executable() -> str:
    """The dbt installed beside this Python (the venv's bin may not be on PATH)."""
    return str(Path(sys.executable).with_name("dbt"))


def _newest_source(dbt_dir: Path) -> float:
    files = [dbt_dir / "dbt_project.yml"]
    for folder in ("models", "macros", "seeds", "tests"):
        files += [p for p in (dbt_dir / folder).rglob("*") if p.is_file()]
    return max(p.stat().st_mtime for p in files)


def ensure_manifest(dbt_dir: Path) -> Path:
    """target/manifest.json, parsed again when missing or older than the project files.
    The parse writes into a folder of its own and the manifest is renamed into place, so a
    process reading it while another parses sees a whole file, old or new."""
    manifest = dbt_dir / "target" / "manifest.json"
    if not manifest.exists() or manifest.stat().st_mtime < _newest_source(dbt_dir):
        manifest.parent.mkdir(parents=True, exist_ok=True)
        parsing = Path(tempfile.mkdtemp(prefix="parse-", dir=manifest.parent))
        try:
            subprocess.run(
                [dbt_executable(), "parse", "--profiles-dir", str(dbt_dir), "--quiet",
                 "--target-path", str(parsing)],
                cwd=dbt_dir,
                check=True,
            )  # fmt: skip
            os.replace(parsing / "manifest.json", manifest)
        finally:
            shutil.rmtree(parsing, ignore_errors=True)
    return manifest
