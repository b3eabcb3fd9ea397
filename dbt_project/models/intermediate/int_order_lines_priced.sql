-- Order lines up to as_of, each as its version known then, with the category and cycle of
-- the product's version known then. Only completed lines count as revenue and as
-- purchases: cancelled and refunded ones are kept but flagged, from the moment they were.
-- Revenue is in the reporting currency: a line in another currency is converted at the
-- newest rate of seeds/exchange_rates.csv on or before its order day (only those lines
-- are looked up), and the rate is kept.
{%- set reporting = var('reporting_currency') %}
with lines as (
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
    end as local_net_revenue,
    l.partition_date,
    l.loaded_at
from {{ ref('int_order_lines_as_of') }} as l
left join {{ ref('int_products_as_of') }} as p
    on l.product_id = p.product_id
where l.ordered_at <= {{ as_of() }}
),

rates as (
    -- each rate with the day the next one of its currency takes over
    select
        currency,
        rate_to_reporting,
        valid_from,
        lead(valid_from) over (partition by currency order by valid_from) as valid_until
    from {{ ref('exchange_rates') }}
),

converted as (
    select
        l.*,
        case when l.currency = '{{ reporting }}' then 1 else r.rate_to_reporting end
            as exchange_rate
    from lines as l
    left join rates as r
        on l.currency = r.currency
        and l.currency <> '{{ reporting }}'
        and cast(l.ordered_at as date) >= r.valid_from
        and (r.valid_until is null or cast(l.ordered_at as date) < r.valid_until)
)

select
    *,
    {{ money('local_net_revenue * exchange_rate') }} as net_revenue,
    '{{ reporting }}' as reporting_currency
from converted
