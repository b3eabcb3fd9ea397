select
    order_id,
    min(customer_id) as customer_id,
    min(ordered_at) as ordered_at,
    min(channel) as channel,
    count(*) as lines_count,
    sum(case when status = 'completed' then quantity else 0 end) as items,
    sum(quantity * unit_price) as gross_amount,
    sum(net_revenue) as net_revenue,
    case
        when min(case when status = 'cancelled' then 1 else 0 end) = 1 then 'cancelled'
        when min(case when status = 'refunded' then 1 else 0 end) = 1 then 'refunded'
        when max(case when status = 'refunded' then 1 else 0 end) = 1 then 'partially_refunded'
        else 'completed'
    end as order_status
from {{ ref('int_order_lines_priced') }}
group by order_id
