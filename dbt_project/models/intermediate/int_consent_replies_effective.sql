-- SMS consent changes made by reply, per customer on the replying number and SMS category,
-- up to as_of (the same rule as send_jobs/consent.py, which judges hand-over):
-- a STOP-type reply opts every customer on the number out of both categories; START/UNSTOP
-- undoes only an opt-out that came by reply: it counts for a category whose latest warehouse
-- event before it (opt-out wins a same-instant tie) is an opt-in.
with replies as (
    select
        r.inbound_id, c.customer_id, r.phone_e164, k.category, r.action, r.occurred_at,
        r.received_at
    from {{ ref('stg_sends__replies') }} as r
    inner join {{ ref('int_customers_as_of') }} as c on r.phone_e164 = c.phone_e164
    cross join {{ ref('consent_channels') }} as k
    where k.channel = 'sms' and r.occurred_at <= {{ as_of() }}
),

warehouse_before as (
    select
        r.inbound_id,
        r.customer_id,
        r.category,
        e.action as warehouse_action,
        row_number() over (
            partition by r.inbound_id, r.customer_id, r.category
            order by e.occurred_at desc,
                case when e.action = 'opt_out' then 1 else 0 end desc,
                e.consent_event_id desc
        ) as recency_rank
    from replies as r
    inner join {{ ref('int_consent_events_accumulated') }} as e
        on r.customer_id = e.customer_id
        and r.category = e.category
        and e.channel = 'sms'
        and e.phone_e164 = r.phone_e164
        and e.occurred_at <= r.occurred_at
)

select
    r.inbound_id,
    r.customer_id,
    'sms' as channel,
    r.category,
    r.action,
    r.occurred_at,
    r.received_at
from replies as r
left join warehouse_before as w
    on r.inbound_id = w.inbound_id
    and r.customer_id = w.customer_id
    and r.category = w.category
    and w.recency_rank = 1
where r.action = 'opt_out' or w.warehouse_action = 'opt_in'
