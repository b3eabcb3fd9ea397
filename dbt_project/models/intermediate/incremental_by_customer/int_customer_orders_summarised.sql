-- Per customer: first/last order, order count, lifetime revenue and the median gap in days
-- between distinct order dates (same-day repeats count once). None of it depends on as_of
-- beyond the lines it reads, so it is kept per customer (macros/incremental_by_key.sql):
-- a nightly build recomputes only the customers whose lines changed. The trailing-window
-- revenue moves with as_of and is computed in dim_customers.
{{ config(
    pre_hook="{{ delete_stale(ref('int_customer_line_fingerprints'), 'customer_id',
                              {'source_rows': 'source_rows', 'source_loaded_at': 'source_loaded_at'}) }}",
) }}

with lines as (
    select *
    from {{ ref('int_order_lines_accumulated') }}
    where true
    {{ missing_from_this('customer_id') }}
),

orders as (
    select
        customer_id,
        order_id,
        min(ordered_at) as ordered_at,
        sum(net_revenue) as net_revenue
    from lines
    where status = 'completed'
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
    max(g.gaps_count) as gaps_count,
    max(g.median_gap_days) as median_gap_days,
    max(f.source_rows) as source_rows,
    max(f.source_loaded_at) as source_loaded_at
from orders as o
left join gap_stats as g
    on o.customer_id = g.customer_id
left join {{ ref('int_customer_line_fingerprints') }} as f
    on o.customer_id = f.customer_id
group by o.customer_id
