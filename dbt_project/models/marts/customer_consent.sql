-- Consent state per customer, channel and category as of the run: the latest event wins;
-- a customer with no event for a pair is 'never' (SMS consent is separate from email,
-- marketing from transactional).
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
    e.consent_source as source,
    e.consent_text_hash,
    e.changed_by,
    e.consent_event_id,
    {{ as_of() }} as as_of
from {{ ref('stg_raw__customers') }} as c
cross join {{ ref('consent_channels') }} as k
left join {{ ref('int_consent_events_latest') }} as e
    on c.customer_id = e.customer_id
    and k.channel = e.channel
    and k.category = e.category
where c.created_at <= {{ as_of() }}
