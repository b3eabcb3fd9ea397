"""A workaround kept for a measured reason, in one place: dagster-dbt's resource without two
start-up costs these assets have no use for (about 7 s a build). It overrides two private
methods of ``DbtCliResource``; ``tests/test_workarounds.py`` fails when dagster-dbt renames
or drops them, so an upgrade cannot silently bring the costs back or break the build."""

from collections.abc import Sequence
from functools import cached_property
from importlib.metadata import version as installed_version

from dagster_dbt import DbtCliResource
from packaging.version import Version

OVERRIDDEN = ("_cli_version", "_initialize_dbt_core_adapter")


class DbtCli(DbtCliResource):
    """dagster-dbt's resource without two start-up costs these assets have no use for
    (about 7 s a build): `dbt --version` in a subprocess, where the dbt beside this Python is
    the installed dbt-core, and a dbt adapter opened in this process, which dagster-dbt only
    uses to fetch column metadata."""

    @cached_property
    def _cli_version(self) -> Version:
        return Version(installed_version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        return None
