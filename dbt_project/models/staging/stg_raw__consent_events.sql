select
    consent_event_id,
    customer_id,
    phone_e164,
    channel,
    category,
    action,
    source as consent_source,
    consent_text,
    keyword,
    occurred_at,
    partition_date,
    loaded_at
from {{ source('raw', 'consent') }}
