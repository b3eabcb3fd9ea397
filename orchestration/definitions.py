"""The Dagster code location: one small ``Definitions`` per concern under ``defs/``.

Runs execute their steps in the run's own process: the warehouse takes one writer at a time
anyway, and a process per step would cost a Python start-up each and have the steps of one
run contend for DuckDB's file lock."""

import dagster as dg

from orchestration.defs import experiments, features, health, ingest, sends

defs = dg.Definitions.merge(
    ingest.defs,
    features.defs,
    sends.defs,
    experiments.defs,
    health.defs,
    dg.Definitions(executor=dg.in_process_executor),
)
