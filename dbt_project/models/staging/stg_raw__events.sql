select
    event_id,
    customer_id,
    event_type,
    occurred_at,
    provenance,
    channel,
    product_id,
    properties,
    partition_date,
    loaded_at
from {{ source('raw', 'events') }}
