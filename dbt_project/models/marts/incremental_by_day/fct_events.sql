-- Behavioural events up to as_of: the shop's, the taps on our own tracked links (sms_click,
-- from the link service) and the answers to our texts' questions (sms_reply). provenance:
-- explicit (the customer knowingly did it: a booking, a form) or tracked (browsing); templates may only use tracked fields when the
-- campaign declares it. Incremental by landing day (the folder's default, dbt_project.yml);
-- Spark builds the whole table, as its parquet tables take no DELETE.
{{ config(pre_hook="{{ delete_after_as_of('occurred_at') }}") }}
select
    event_id,
    customer_id,
    event_type,
    occurred_at,
    provenance,
    channel,
    product_id,
    properties,
    partition_date,
    loaded_at,
    '{{ invocation_id }}' as build_id  -- the dbt build that wrote the row
from (
    select * from {{ ref('stg_raw__events') }}
    union all
    select * from {{ ref('stg_sends__clicks') }}
    union all
    select
        event_id, customer_id, event_type, occurred_at, provenance, channel, product_id,
        properties, partition_date, loaded_at
    from {{ ref('stg_sends__reply_actions') }}
) as events
where occurred_at <= {{ as_of() }}
{{ days_to_rebuild('occurred_at') }}
