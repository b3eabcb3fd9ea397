-- Per customer and product bought (completed lines): the last purchase, the number of
-- distinct purchase dates and the median gap in days between them. Kept per customer
-- (macros/incremental_by_key.sql): a nightly build recomputes only the customers whose
-- lines changed. customer_replenishment lays the reminder windows on top, as of the run.
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

purchase_days as (
    select
        customer_id,
        product_id,
        cast(ordered_at as date) as purchase_date,
        max(ordered_at) as purchased_at
    from lines
    where status = 'completed'
    group by customer_id, product_id, cast(ordered_at as date)
),

gaps as (
    select
        *,
        {{ dbt.datediff(
            "lag(purchase_date) over (partition by customer_id, product_id order by purchase_date)",
            "purchase_date", "day") }} as gap_days
    from purchase_days
)

select
    {{ dbt.concat(["g.customer_id", "'|'", "g.product_id"]) }} as customer_product_key,
    g.customer_id,
    g.product_id,
    max(g.purchased_at) as last_purchased_at,
    count(*) as purchases_count,
    count(g.gap_days) as gaps_count,
    {{ median('g.gap_days') }} as median_gap_days,
    max(f.source_rows) as source_rows,
    max(f.source_loaded_at) as source_loaded_at
from gaps as g
left join {{ ref('int_customer_line_fingerprints') }} as f
    on g.customer_id = f.customer_id
group by g.customer_id, g.product_id
