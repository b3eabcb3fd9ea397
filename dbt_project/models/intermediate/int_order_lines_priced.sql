-- Order lines up to as_of, each as its version known then, with the category and cycle of
-- the product's version known then. Only completed lines count as revenue and as
-- purchases: cancelled and refunded ones are kept but flagged, from the moment they were.
select
    l.order_line_id,
    l.order_id,
    l.order_line_no,
    l.customer_id,
    l.product_id,
    p.category,
    p.replenishment_days,
    l.quantity,
    l.unit_price,
    coalesce(l.discount_amount, 0) as discount_amount,
    l.currency,
    l.status,
    l.channel,
    l.ordered_at,
    l.updated_at,
    case when l.status = 'completed' then 1 else 0 end as is_purchase,
    case
        when l.status = 'completed'
            then l.quantity * l.unit_price - coalesce(l.discount_amount, 0)
        else 0
    end as net_revenue,
    l.partition_date,
    l.loaded_at
from {{ ref('int_order_lines_as_of') }} as l
left join {{ ref('int_products_as_of') }} as p
    on l.product_id = p.product_id
where l.ordered_at <= {{ as_of() }}
