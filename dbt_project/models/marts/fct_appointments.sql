-- One row per appointment booked by as_of (appointment_booked events): when and where, and
-- the customer's answer to our reminder's question: the latest reply action whose occasion
-- is the booking (send_jobs/answers.py), or no_reply.
with bookings as (
    select
        event_id as appointment_id,
        customer_id,
        occurred_at as booked_at,
        cast({{ json_text('properties', 'appointment_at') }} as timestamp) as appointment_at,
        {{ json_text('properties', 'store_name') }} as store_name
    from {{ ref('fct_events') }}
    where event_type = 'appointment_booked'
),

answers as (
    select
        occasion,
        action,
        occurred_at,
        row_number() over (partition by occasion order by occurred_at desc, event_id desc)
            as answer_order
    from {{ ref('stg_sends__reply_actions') }}
    where occurred_at <= {{ as_of() }} and occasion is not null
)

select
    b.appointment_id,
    b.customer_id,
    b.booked_at,
    b.appointment_at,
    b.store_name,
    coalesce(a.action, 'no_reply') as reply_status,
    a.occurred_at as replied_at,
    {{ as_of() }} as as_of
from bookings as b
left join answers as a
    on b.appointment_id = a.occasion and a.answer_order = 1
