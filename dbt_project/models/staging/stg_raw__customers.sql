select
    customer_id,
    first_name,
    phone_e164,
    country,
    region,
    time_zone,
    language,
    created_at
from {{ source('raw', 'customers') }}
