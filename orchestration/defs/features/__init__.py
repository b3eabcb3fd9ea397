"""Features: the dbt project (staging -> intermediate -> marts) as Dagster assets, built as
of the run's time; dbt tests appear as asset checks."""

import uuid
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtProject, dbt_assets
from dagster_duckdb import DuckDBResource

from orchestration.defs.common import SettingsResource
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


class FeaturesConfig(dg.Config):
    as_of: str  # the run's time, ISO 8601 with a zone, e.g. 2026-01-01T00:00:00Z


@dbt_assets(manifest=ensure_manifest(DBT_DIR), dagster_dbt_translator=FeaturesTranslator())
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
    threads = str(dbt_threads(built > 0, settings.dbt_threads))
    # dagster-dbt's folder name for a build, chosen here so the parse state goes in first
    op = context.op_execution_context.op.name
    build_target = DBT_DIR / "target" / f"{op}-{context.run.run_id[:7]}-{uuid.uuid4().hex[:7]}"
    state = parse_state(DBT_DIR / "target", warehouse.database)
    restore_partial_parse(state, build_target)
    with dbt_env(warehouse.database, config.as_of):  # the subprocess starts inside dbt.cli
        invocation = dbt.cli(
            ["build", "--threads", threads], context=context, target_path=build_target
        )
    yield from invocation.stream()
    keep_partial_parse(build_target, state)
    prune_build_folders(DBT_DIR / "target", prefix=op)


defs = dg.Definitions(
    assets=[features],
    resources={"dbt": DbtCli(project_dir=dbt_project, dbt_executable=dbt_executable())},
)
