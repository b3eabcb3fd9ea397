select
    {{ dbt.concat(["order_id", "'-'", "cast(order_line_no as " ~ dbt.type_string() ~ ")"]) }}
        as order_line_id,
    order_id,
    order_line_no,
    customer_id,
    product_id,
    quantity,
    unit_price,
    discount_amount,
    currency,
    status,
    channel,
    ordered_at,
    partition_date,
    loaded_at
from {{ source('raw', 'orders') }}
