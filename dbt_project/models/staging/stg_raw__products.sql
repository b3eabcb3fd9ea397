select
    product_id,
    name as product_name,
    category,
    replenishment_days,
    price,
    currency,
    launched_at
from {{ source('raw', 'products') }}
