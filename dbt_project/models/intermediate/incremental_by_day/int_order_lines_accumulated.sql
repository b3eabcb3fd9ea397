-- One row per order line up to as_of, as known then; cancelled and refunded lines are kept,
-- flagged, and carry no revenue from the moment they were (status_changed_at). Stored by
-- landing day (macros/incremental_by_day.sql): a nightly build writes the new and changed
-- days only. The per-customer models and fct_order_lines read it.
{{ config(pre_hook="{{ delete_after_as_of('ordered_at') }}") }}
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
    updated_at as status_changed_at,
    case when status = 'cancelled' then 1 else 0 end as is_cancelled,
    case when status = 'refunded' then 1 else 0 end as is_refunded,
    net_revenue,
    local_net_revenue,
    exchange_rate,
    reporting_currency,
    partition_date,
    loaded_at,
    '{{ invocation_id }}' as build_id  -- the dbt build that wrote the row
from {{ ref('int_order_lines_priced') }}
where true
{{ days_to_rebuild('ordered_at', lines=ref('stg_raw__order_lines'), changed_at='status_changed_at') }}
