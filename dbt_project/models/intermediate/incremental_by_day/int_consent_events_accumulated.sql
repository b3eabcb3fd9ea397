-- Consent history up to as_of with its proof. Stored by landing day
-- (macros/incremental_by_day.sql); the consent models and fct_consent_events read it.
{{ config(pre_hook="{{ delete_after_as_of('occurred_at') }}") }}
select
    *,
    '{{ invocation_id }}' as build_id  -- the dbt build that wrote the row
from {{ ref('int_consent_events_hashed') }}
where true
{{ days_to_rebuild('occurred_at') }}
