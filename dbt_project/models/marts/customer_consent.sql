-- Consent state per customer, channel and category as of the run: the latest event wins,
-- whether it came from the shop's consent log or by reply (STOP/START, from
-- int_consent_replies_effective); at the same instant an opt-out wins. A customer with no
-- event for a pair is 'never' (SMS consent is separate from email, marketing from
-- transactional). When each change happened and when it was learned stay in
-- fct_consent_events (occurred_at, loaded_at) and int_consent_replies_effective
-- (occurred_at, received_at). The send jobs judge hand-over with the same rule
-- (send_jobs/consent.py); tests/test_consent_model.py checks that both agree.
with replies as (
    select
        customer_id,
        channel,
        category,
        action,
        occurred_at,
        inbound_id,
        row_number() over (
            partition by customer_id, channel, category
            order by occurred_at desc,
                case when action = 'opt_out' then 1 else 0 end desc,
                inbound_id desc
        ) as recency_rank
    from {{ ref('int_consent_replies_effective') }}
),

events as (
    select
        customer_id, channel, category, action, occurred_at, consent_source as source,
        consent_text_hash, changed_by, consent_event_id, 0 as from_reply
    from {{ ref('int_consent_events_latest') }}
    union all
    select
        customer_id, channel, category, action, occurred_at, 'reply' as source,
        cast(null as {{ dbt.type_string() }}) as consent_text_hash, 'customer' as changed_by,
        inbound_id as consent_event_id, 1 as from_reply
    from replies
    where recency_rank = 1
),

latest as (
    select
        *,
        row_number() over (
            partition by customer_id, channel, category
            order by occurred_at desc,
                case when action = 'opt_out' then 1 else 0 end desc,
                from_reply desc
        ) as recency_rank
    from events
)

select
    {{ dbt.concat(["c.customer_id", "'|'", "k.channel", "'|'", "k.category"]) }} as consent_key,
    c.customer_id,
    k.channel,
    k.category,
    case
        when e.action = 'opt_in' then 'opted_in'
        when e.action = 'opt_out' then 'opted_out'
        else 'never'
    end as status,
    e.occurred_at as since,
    e.source,
    e.consent_text_hash,
    e.changed_by,
    e.consent_event_id,
    {{ as_of() }} as as_of
from {{ ref('stg_raw__customers') }} as c
cross join {{ ref('consent_channels') }} as k
left join latest as e
    on c.customer_id = e.customer_id
    and k.channel = e.channel
    and k.category = e.category
    and e.recency_rank = 1
where c.created_at <= {{ as_of() }}
