-- The latest consent event per customer, channel and category up to as_of (at the same
-- instant an opt-out wins, as on the send path; then the later event id). SMS consent is
-- given for a number: one latest event per number, and customer_consent reads the one of
-- the customer's number at as_of (a new number needs its own opt-in). Kept per
-- customer (macros/incremental_by_key.sql): a nightly build ranks again only the
-- customers whose consent history changed.
{{ config(
    pre_hook="{{ delete_stale(fingerprints_of(ref('int_consent_events_accumulated'), 'customer_id'), 'customer_id',
                              {'source_rows': 'source_rows', 'source_loaded_at': 'source_loaded_at'}) }}",
) }}

with history as (
    select *
    from {{ ref('int_consent_events_accumulated') }}
    where true
    {{ missing_from_this('customer_id') }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by customer_id, channel, category,
                case when channel = 'sms' then phone_e164 end
            order by occurred_at desc,
                case when action = 'opt_out' then 1 else 0 end desc,
                consent_event_id desc
        ) as recency_rank
    from history
),

fingerprints as (
    select * from {{ fingerprints_of('history', 'customer_id') }} as f
)

select
    r.consent_event_id,
    r.customer_id,
    r.phone_e164,
    r.channel,
    r.category,
    r.action,
    r.consent_source,
    r.consent_text,
    r.consent_text_hash,
    r.keyword,
    r.changed_by,
    r.occurred_at,
    f.source_rows,
    f.source_loaded_at
from ranked as r
inner join fingerprints as f
    on r.customer_id = f.customer_id
where r.recency_rank = 1
