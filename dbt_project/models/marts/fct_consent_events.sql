-- Consent history up to as_of with its proof. Incremental by landing day
-- (macros/incremental_by_day.sql); Spark builds the whole table.
{{ config(
    materialized=('table' if target.type == 'spark' else 'incremental'),
    on_schema_change='append_new_columns',
    incremental_strategy='delete+insert',
    unique_key='partition_date',
    pre_hook="{{ delete_after_as_of('occurred_at') }}",
) }}
select
    *,
    '{{ invocation_id }}' as build_id  -- the dbt build that wrote the row
from {{ ref('int_consent_events_hashed') }}
where true
{{ days_to_rebuild('occurred_at') }}
