-- Consent state per customer, channel and category as of the run: the latest event wins,
-- whether it came from the shop's consent log or by reply (STOP/START, from
-- int_consent_replies_effective); at the same instant an opt-out wins. A customer with no
-- event for a pair is 'never' (SMS consent is separate from email, marketing from
-- transactional). SMS consent belongs to the number it was given for: after a phone change
-- the customer is 'never' until the new number is opted in. When each change happened and when it was learned stay in
-- fct_consent_events (occurred_at, loaded_at) and int_consent_replies_effective
-- (occurred_at, received_at). The send jobs judge hand-over with the same rule
-- (send_jobs/consent.py); tests/test_consent_model.py checks that both agree.
with replies as (
    select *
    from (
        select
            *,
            row_number() over (
                partition by customer_id, channel, category
                order by occurred_at desc,
                    case when action = 'opt_out' then 1 else 0 end desc,
                    inbound_id desc
            ) as recency_rank
        from {{ ref('int_consent_replies_effective') }}
    ) as ranked
    where recency_rank = 1
),

latest as (
    -- the log's latest event per pair, unless a reply is later (or as late and an opt-out)
    select
        c.customer_id,
        k.channel,
        k.category,
        r.inbound_id is not null and (
            e.consent_event_id is null
            or r.occurred_at > e.occurred_at
            or (r.occurred_at = e.occurred_at and r.action = 'opt_out')
        ) as by_reply,
        e.action as log_action,
        e.occurred_at as log_occurred_at,
        e.consent_source,
        e.consent_text_hash,
        e.changed_by,
        e.consent_event_id,
        r.action as reply_action,
        r.occurred_at as reply_occurred_at,
        r.inbound_id
    from {{ ref('int_customers_as_of') }} as c
    cross join {{ ref('consent_channels') }} as k
    left join {{ ref('int_consent_events_latest') }} as e
        on c.customer_id = e.customer_id
        and k.channel = e.channel
        and k.category = e.category
        and (k.channel <> 'sms' or e.phone_e164 = c.phone_e164)
    left join replies as r
        on c.customer_id = r.customer_id
        and k.channel = r.channel
        and k.category = r.category
    where c.created_at <= {{ as_of() }}
)

select
    {{ dbt.concat(["customer_id", "'|'", "channel", "'|'", "category"]) }} as consent_key,
    customer_id,
    channel,
    category,
    case
        when (case when by_reply then reply_action else log_action end) = 'opt_in'
            then 'opted_in'
        when (case when by_reply then reply_action else log_action end) = 'opt_out'
            then 'opted_out'
        else 'never'
    end as status,
    case when by_reply then reply_occurred_at else log_occurred_at end as since,
    case when by_reply then 'reply' else consent_source end as source,
    case when by_reply then null else consent_text_hash end as consent_text_hash,
    case when by_reply then 'customer' else changed_by end as changed_by,
    case when by_reply then inbound_id else consent_event_id end as consent_event_id,
    {{ as_of() }} as as_of
from latest
