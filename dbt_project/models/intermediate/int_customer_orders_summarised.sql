-- Per customer: first/last order, order count, revenue (lifetime and trailing window) and
-- the median gap in days between distinct order dates (same-day repeats count once).
-- A table, not a view: dim_customers and the key tests read it; as a view each of them
-- would aggregate every order line again.
{{ config(materialized='table') }}

with orders as (
    select
        customer_id,
        order_id,
        min(ordered_at) as ordered_at,
        sum(net_revenue) as net_revenue
    from {{ ref('int_order_lines_priced') }}
    where is_purchase = 1
    group by customer_id, order_id
),

order_days as (
    select distinct customer_id, cast(ordered_at as date) as order_date
    from orders
),

gaps as (
    select
        customer_id,
        {{ dbt.datediff(
            "lag(order_date) over (partition by customer_id order by order_date)",
            "order_date", "day") }} as gap_days
    from order_days
),

gap_stats as (
    select customer_id, count(gap_days) as gaps_count, {{ median('gap_days') }} as median_gap_days
    from gaps
    group by customer_id
)

select
    o.customer_id,
    min(o.ordered_at) as first_order_at,
    max(o.ordered_at) as last_order_at,
    count(*) as orders_count,
    sum(o.net_revenue) as lifetime_revenue,
    sum(
        case
            when o.ordered_at > {{ dbt.dateadd('day', -var('loyalty')['window_days'], as_of()) }}
                then o.net_revenue
            else 0
        end
    ) as trailing_revenue,
    max(g.gaps_count) as gaps_count,
    max(g.median_gap_days) as median_gap_days
from orders as o
left join gap_stats as g
    on o.customer_id = g.customer_id
group by o.customer_id
