select
    event_id,
    customer_id,
    event_type,
    occurred_at,
    provenance,
    channel,
    product_id,
    properties
from {{ source('raw', 'events') }}
