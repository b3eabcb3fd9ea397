"""The one place that writes environment variables, for third-party tools that read their
settings only from there: dbt's profile and as_of macro (``dbt_build.dbt_env``), Dagster's
planned-event switch for backfills, Great Expectations' analytics opt-out. Everything of our
own takes its settings as arguments (``warehouse.settings.Settings``)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


@contextmanager
def scoped_env(values: Mapping[str, str], keep_existing: bool = False) -> Iterator[None]:
    """``values`` in the environment while the block runs (a subprocess started inside sees
    them), restored after. ``keep_existing``: a variable the user set is left as it is."""
    previous = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        if not (keep_existing and previous[name] is not None):
            os.environ[name] = value
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def opt_out_of_great_expectations_analytics() -> None:
    """GX sends usage analytics unless told not to, before it is imported; a user's own
    setting wins."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
