-- What each customer buys, by category, from purchases only (never from browsing): orders,
-- revenue, share and category_rank. Kept per customer (macros/incremental_by_key.sql): a nightly
-- build recomputes only the customers whose lines changed, and every customer when the
-- catalog (the categories) was reloaded.
{{ config(
    pre_hook="{{ delete_stale(ref('int_customer_line_fingerprints'), 'customer_id',
                              {'source_rows': 'source_rows', 'source_loaded_at': 'source_loaded_at',
                               'catalog_loaded_at': 'catalog_loaded_at'}) }}",
) }}

with lines as (
    select *
    from {{ ref('int_order_lines_accumulated') }}
    where true
    {{ missing_from_this('customer_id') }}
),

by_category as (
    select
        l.customer_id,
        p.category,
        count(distinct l.order_id) as purchases,
        sum(l.net_revenue) as revenue
    from lines as l
    inner join {{ ref('int_products_as_of') }} as p
        on l.product_id = p.product_id
    where l.status = 'completed' and p.category is not null
    group by l.customer_id, p.category
)

select
    {{ dbt.concat(["b.customer_id", "'|'", "b.category"]) }} as customer_category_key,
    b.customer_id,
    b.category,
    b.purchases,
    b.revenue,
    cast(case
        when sum(b.revenue) over (partition by b.customer_id) > 0
            then b.revenue / sum(b.revenue) over (partition by b.customer_id)
        else 0
    end as double) as share,
    cast(row_number() over (
        partition by b.customer_id order by b.revenue desc, b.purchases desc, b.category
    ) as bigint) as category_rank,
    f.source_rows,
    f.source_loaded_at,
    f.catalog_loaded_at
from by_category as b
left join {{ ref('int_customer_line_fingerprints') }} as f
    on b.customer_id = f.customer_id
