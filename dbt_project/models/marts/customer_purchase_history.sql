-- One row per customer with a completed purchase up to as_of: the purchase history the
-- predicted-value models (BG/NBD and Gamma-Gamma, targeting/clv.py) are fitted on, in days.
-- The models count purchase days: orders on one UTC day are one purchase, and the first
-- purchase is not a repeat, so its value stays out of the mean repeat value (Fader, Hardie
-- and Lee). The same history 30 days earlier tells whether probability alive is falling.
{%- set as_of_date = 'cast(' ~ as_of() ~ ' as date)' %}
{%- set earlier_date = 'cast(' ~ dbt.dateadd('day', -30, as_of()) ~ ' as date)' %}
with purchase_days as (
    select
        customer_id,
        cast(ordered_at as date) as purchase_date,
        sum(net_revenue) as day_revenue
    from {{ ref('fct_orders') }}
    where order_status in ('completed', 'partially_refunded') and ordered_at <= {{ as_of() }}
    group by customer_id, cast(ordered_at as date)
),

dated as (
    select
        customer_id,
        purchase_date,
        day_revenue,
        min(purchase_date) over (partition by customer_id) as first_date,
        case when purchase_date <= {{ earlier_date }} then purchase_date end as earlier_purchase
    from purchase_days
),

histories as (
    select
        customer_id,
        min(first_date) as first_date,
        max(purchase_date) as last_date,
        count(*) as purchase_days,
        avg(case when purchase_date > first_date then day_revenue end) as mean_repeat_value,
        count(earlier_purchase) as earlier_purchase_days,
        max(earlier_purchase) as earlier_last_date
    from dated
    group by customer_id
)

select
    customer_id,
    first_date as first_purchase_date,
    cast(purchase_days - 1 as bigint) as repeat_purchases,
    cast({{ dbt.datediff('first_date', 'last_date', 'day') }} as bigint) as recency_days,
    cast({{ dbt.datediff('first_date', as_of_date, 'day') }} as bigint) as age_days,
    cast(mean_repeat_value as double) as mean_repeat_value,
    cast(case when earlier_purchase_days > 0 then earlier_purchase_days - 1 end as bigint)
        as repeat_purchases_30d_ago,
    cast(case when earlier_purchase_days > 0
        then {{ dbt.datediff('first_date', 'earlier_last_date', 'day') }} end as bigint)
        as recency_days_30d_ago,
    cast(case when earlier_purchase_days > 0
        then {{ dbt.datediff('first_date', earlier_date, 'day') }} end as bigint)
        as age_days_30d_ago,
    {{ as_of() }} as as_of
from histories
