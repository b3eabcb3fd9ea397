-- One row per order line up to as_of; cancelled and refunded lines are kept, flagged, and
-- carry no revenue.
select
    order_line_id,
    order_id,
    order_line_no,
    customer_id,
    product_id,
    category,
    quantity,
    unit_price,
    discount_amount,
    currency,
    status,
    channel,
    ordered_at,
    case when status = 'cancelled' then 1 else 0 end as is_cancelled,
    case when status = 'refunded' then 1 else 0 end as is_refunded,
    net_revenue
from {{ ref('int_order_lines_priced') }}
