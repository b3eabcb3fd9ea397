-- What each customer buys, by category, from purchases only (never from browsing).
with by_category as (
    select
        customer_id,
        category,
        count(distinct order_id) as purchases,
        sum(net_revenue) as revenue
    from {{ ref('int_order_lines_priced') }}
    where is_purchase = 1 and category is not null
    group by customer_id, category
)

select
    {{ dbt.concat(["customer_id", "'|'", "category"]) }} as customer_category_key,
    customer_id,
    category,
    purchases,
    revenue,
    case
        when sum(revenue) over (partition by customer_id) > 0
            then revenue / sum(revenue) over (partition by customer_id)
        else 0
    end as share,
    row_number() over (
        partition by customer_id order by revenue desc, purchases desc, category
    ) as rank
from by_category
