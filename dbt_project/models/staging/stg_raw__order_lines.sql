-- Every version of every order line: a refund or cancellation lands as a new version with
-- its updated_at (the moment it happened). int_order_lines_as_of picks the one known at
-- as_of. No window here: the large source is only ranked where a line has versions.
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
    updated_at,
    coalesce(updated_at, ordered_at) as valid_from,
    partition_date,
    loaded_at
from {{ source('raw', 'orders') }}
