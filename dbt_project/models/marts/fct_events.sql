-- Behavioural events up to as_of. provenance: explicit (the customer knowingly did it: a
-- booking, a form) or tracked (browsing); templates may only use tracked fields when the
-- campaign declares it.
select
    event_id,
    customer_id,
    event_type,
    occurred_at,
    provenance,
    channel,
    product_id,
    properties
from {{ ref('stg_raw__events') }}
where occurred_at <= {{ as_of() }}
