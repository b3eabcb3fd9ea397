"""The Dagster code location: one small ``Definitions`` per concern under ``defs/``."""

import dagster as dg

from orchestration.defs import experiments, features, ingest, sends

defs = dg.Definitions.merge(ingest.defs, features.defs, sends.defs, experiments.defs)
