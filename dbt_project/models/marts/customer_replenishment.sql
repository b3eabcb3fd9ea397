-- One row per customer x replenishable product bought (completed lines up to as_of; the
-- purchase history per product is kept in int_customer_product_purchases).
-- interval: the customer's own median gap between distinct purchase dates once they have
-- enough gaps, else the catalog cycle. The reminder window is laid on local calendar days
-- in the customer's time zone: it opens at local midnight and closes at local midnight.
{%- set r = var('replenishment') %}
with per_product as (
    select
        b.*,
        p.category,
        p.replenishment_days as catalog_days
    from {{ ref('int_customer_product_purchases') }} as b
    inner join {{ ref('int_products_as_of') }} as p
        on b.product_id = p.product_id
    where p.replenishment_days is not null
),

intervals as (
    select
        p.customer_product_key,
        p.customer_id,
        p.product_id,
        p.category,
        p.last_purchased_at,
        p.purchases_count,
        case when p.gaps_count >= {{ r['min_gaps'] }} then 'customer' else 'catalog' end
            as interval_source,
        case
            when p.gaps_count >= {{ r['min_gaps'] }}
                then cast(round(p.median_gap_days) as integer)
            else cast(p.catalog_days as integer)
        end as interval_days,
        coalesce(c.time_zone, d.default_time_zone, 'UTC') as time_zone
    from per_product as p
    left join {{ ref('int_customers_as_of') }} as c on p.customer_id = c.customer_id
    left join {{ ref('country_defaults') }} as d on c.country = d.country
),

due as (
    select
        *,
        {{ dbt.dateadd('day', 'interval_days', 'last_purchased_at') }} as next_due_at,
        cast(round(interval_days * {{ r['window_open_fraction'] }}) as integer) as open_days,
        cast(round(interval_days * {{ r['window_close_fraction'] }}) as integer) as close_days
    from intervals
),

local_days as (
    select
        *,
        cast({{ utc_to_local('next_due_at', 'time_zone') }} as date) as due_local_date
    from due
),

windows as (
    select
        *,
        {{ local_to_utc(
            "cast(" ~ dbt.dateadd('day', '-open_days', 'due_local_date') ~ " as timestamp)",
            'time_zone') }} as window_opens_at,
        {{ local_to_utc(
            "cast(" ~ dbt.dateadd('day', 'close_days + 1', 'due_local_date') ~ " as timestamp)",
            'time_zone') }} as window_closes_at,
        {{ dbt.dateadd('day', 'cast(interval_days * ' ~ r['lapse_multiplier'] ~ ' as integer)',
                       'last_purchased_at') }} as lapses_at
    from local_days
)

select
    customer_product_key,
    customer_id,
    product_id,
    category,
    last_purchased_at,
    purchases_count,
    interval_days,
    interval_source,
    next_due_at,
    window_opens_at,
    window_closes_at,
    case
        when {{ as_of() }} < window_opens_at then 'not_due'
        when {{ as_of() }} < window_closes_at then 'due'
        when {{ as_of() }} < lapses_at then 'overdue'
        else 'lapsed'
    end as status,
    time_zone,
    {{ as_of() }} as as_of
from windows
