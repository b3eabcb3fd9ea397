-- Order lines up to as_of with their product's category and cycle. Only completed lines
-- count as revenue and as purchases: cancelled and refunded ones are kept but flagged.
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
    case when l.status = 'completed' then 1 else 0 end as is_purchase,
    case
        when l.status = 'completed'
            then l.quantity * l.unit_price - coalesce(l.discount_amount, 0)
        else 0
    end as net_revenue,
    l.partition_date,
    l.loaded_at
from {{ ref('stg_raw__order_lines') }} as l
left join {{ ref('stg_raw__products') }} as p
    on l.product_id = p.product_id
where l.ordered_at <= {{ as_of() }}
