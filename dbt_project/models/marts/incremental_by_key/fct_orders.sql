-- One row per order up to as_of, from its lines. Kept per order (macros/incremental_by_key.sql):
-- a build recomputes only the orders whose lines changed; lines_count and loaded_at (the
-- newest line's load) are the fingerprint. Spark builds the whole table.
{{ config(
    pre_hook="{{ delete_stale(fingerprints_of(ref('int_order_lines_accumulated'), 'order_id'), 'order_id',
                              {'lines_count': 'source_rows', 'loaded_at': 'source_loaded_at'}) }}",
) }}
select
    order_id,
    min(customer_id) as customer_id,
    min(ordered_at) as ordered_at,
    min(channel) as channel,
    count(*) as lines_count,
    cast(sum(case when status = 'completed' then quantity else 0 end) as bigint) as items,
    sum(quantity * unit_price) as gross_amount,
    sum(net_revenue) as net_revenue,
    case
        when min(case when status = 'cancelled' then 1 else 0 end) = 1 then 'cancelled'
        when min(case when status = 'refunded' then 1 else 0 end) = 1 then 'refunded'
        when max(case when status = 'refunded' then 1 else 0 end) = 1 then 'partially_refunded'
        else 'completed'
    end as order_status,
    max(loaded_at) as loaded_at
from {{ ref('int_order_lines_accumulated') }}
where true
{{ missing_from_this('order_id') }}
group by order_id
