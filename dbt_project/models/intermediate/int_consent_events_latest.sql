-- The latest consent event per customer, channel and category up to as_of (ties on the
-- same instant: the later event id wins, as the source system issued it later).
-- A table, not a view: customer_consent and the key test read it; as a view each would
-- rank the whole consent history again.
{{ config(materialized='table') }}

with ranked as (
    select
        *,
        row_number() over (
            partition by customer_id, channel, category
            order by occurred_at desc, consent_event_id desc
        ) as recency_rank
    from {{ ref('int_consent_events_hashed') }}
)

select * from ranked where recency_rank = 1
