"""Features: the dbt project (staging -> intermediate -> marts) as Dagster assets, built as
of a given time or, by default, as of the end of the newest loaded landing day; dbt tests
appear as asset checks. They rebuild by themselves after each ingest (declarative
automation), so the nightly chain needs no manual step."""

import functools
import operator
import uuid
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtProject, dbt_assets
from dagster_duckdb import DuckDBResource

from ingest.pending import features_as_of
from ingest.spec import sources
from orchestration.defs.common import LAST_UPDATED, WAREHOUSE_POOL, SettingsResource
from orchestration.defs.features.dbt_resource import DbtCli
from warehouse.dbt_build import (
    DBT_DIR,
    dbt_env,
    dbt_executable,
    dbt_threads,
    ensure_manifest,
    keep_partial_parse,
    parse_state,
    prune_build_folders,
    restore_partial_parse,
)

dbt_project = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR)
dbt_project.prepare_if_dev()


class FeaturesTranslator(DagsterDbtTranslator):
    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        """Models and seeds are keyed by their schema (staging, intermediate, marts,
        reference) and name; sources keep the ingest asset keys from their meta."""
        if dbt_resource_props["resource_type"] in ("model", "seed"):
            schema = dbt_resource_props["config"].get("schema") or "main"
            return dg.AssetKey([schema, dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        """Every dbt node is in the `features` group, next to `ingest`."""
        return "features"

    def get_description(self, dbt_resource_props: Mapping[str, Any]) -> str:
        """The model's own description from its YAML, without the SQL that dagster-dbt
        appends (the SQL is one click away in the dbt docs and the code)."""
        text = dbt_resource_props.get("description") or ""
        kind = dbt_resource_props["resource_type"]
        return text or f"dbt {kind} `{dbt_resource_props['name']}` (no description in its YAML)"

    def get_automation_condition(
        self, dbt_resource_props: Mapping[str, Any]
    ) -> dg.AutomationCondition | None:
        return AFTER_INGEST


# The whole dbt graph (seeds included) rebuilds once after any raw source gets new
# partitions: one run, as the CLI builds, rather than the fragments that per-model
# conditions request while parts of the graph are still running. Dagster's eager() is not
# used: it waits while any daily partition of a raw source is missing, which for a source
# such as products (files only on the days the catalogue changes) is always.
RAW_UPDATED = [
    dg.AutomationCondition.asset_matches(["raw", source], dg.AutomationCondition.newly_updated())
    for source in sources()
]
AFTER_INGEST = (
    functools.reduce(operator.or_, RAW_UPDATED).since_last_handled()
    & ~dg.AutomationCondition.in_progress()
).with_label("after ingest")


# dbt's unit tests check the SQL against fixed rows, not the data: they belong to development
# and CI (`make test` runs them on DuckDB and on Spark), not to every nightly build, as dbt
# recommends. The data tests run in every build.
PRODUCTION_BUILD = ("--exclude-resource-type", "unit_test")


class FeaturesConfig(dg.Config):
    # ISO 8601 with a zone, e.g. 2026-01-01T00:00:00Z; empty: the end of the newest loaded
    # landing day, which is what automation-launched runs use
    as_of: str = ""


@dbt_assets(
    manifest=ensure_manifest(DBT_DIR),
    dagster_dbt_translator=FeaturesTranslator(),
    pool=WAREHOUSE_POOL,
)
def features(
    context: dg.AssetExecutionContext,
    dbt: DbtCli,
    warehouse: DuckDBResource,
    settings: SettingsResource,
    config: FeaturesConfig,
):
    with warehouse.get_connection() as con:
        built = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'marts'"
        ).fetchall()[0][0]
        as_of = _as_of(config.as_of, con, context.selected_asset_keys)
    threads = str(dbt_threads(built > 0, settings.get().dbt_threads))
    # dagster-dbt's folder name for a build, chosen here so the parse state goes in first
    op = context.op_execution_context.op.name
    build_target = DBT_DIR / "target" / f"{op}-{context.run.run_id[:7]}-{uuid.uuid4().hex[:7]}"
    state = parse_state(DBT_DIR / "target", warehouse.database)
    restore_partial_parse(state, build_target)
    iso = as_of.isoformat() if as_of else None
    context.log.info(f"building {len(context.selected_asset_keys)} dbt nodes as of {iso}")
    with dbt_env(warehouse.database, iso):  # the subprocess starts in dbt.cli
        invocation = dbt.cli(
            ["build", "--threads", threads, *PRODUCTION_BUILD],
            context=context,
            target_path=build_target,
        )
    # as of: the data time the freshness checks and the send schedule judge the marts by
    data_time = {"as_of": iso, LAST_UPDATED: dg.MetadataValue.timestamp(as_of)} if as_of else {}
    for event in invocation.stream():
        if isinstance(event, dg.Output):
            event = event.with_metadata({**event.metadata, **data_time})
        yield event
    keep_partial_parse(build_target, state)
    prune_build_folders(DBT_DIR / "target", prefix=op)


def _as_of(given: str, con, selected: AbstractSet[dg.AssetKey]) -> datetime | None:
    """The given time, else the end of the newest loaded landing day; None for a build of
    the seeds alone before anything is loaded."""
    if given:
        return datetime.fromisoformat(given.replace("Z", "+00:00"))
    as_of = features_as_of(con)
    if as_of is None and not all(key.path[0] == "reference" for key in selected):
        raise dg.Failure("nothing is loaded yet: the features need at least one landing day")
    return as_of


dbt_resource = DbtCli(project_dir=dbt_project, dbt_executable=dbt_executable())
