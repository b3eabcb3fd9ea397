"""Features: the dbt project and the predicted customer value as assets that rebuild after
each ingest, a job to rebuild them by hand (as of the newest loaded day unless the launchpad
names a time), and the marts' freshness checks."""

import dagster as dg

from orchestration.defs.features.assets import dbt_resource, features
from orchestration.defs.features.checks import marts_freshness
from orchestration.defs.features.predictions import customer_value

features_job = dg.define_asset_job("features_job", selection=[features, customer_value])

defs = dg.Definitions(
    assets=[features, customer_value],
    asset_checks=marts_freshness,
    jobs=[features_job],
    resources={"dbt": dbt_resource},
)
