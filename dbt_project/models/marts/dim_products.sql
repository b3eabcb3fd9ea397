-- One row per product launched by as_of: the catalog the send jobs name products from.
select
    product_id,
    product_name,
    category,
    replenishment_days,
    price,
    currency,
    launched_at,
    {{ as_of() }} as as_of
from {{ ref('int_products_as_of') }}
where launched_at <= {{ as_of() }}
