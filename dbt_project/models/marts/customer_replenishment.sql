-- One row per customer x replenishable product bought (completed lines up to as_of).
-- interval: the customer's own median gap between distinct purchase dates once they have
-- enough gaps, else the catalog cycle. The reminder window is laid on local calendar days
-- in the customer's time zone: it opens at local midnight and closes at local midnight.
{%- set r = var('replenishment') %}
with purchases as (
    select
        l.customer_id,
        l.product_id,
        max(l.category) as category,
        max(l.replenishment_days) as catalog_days,
        cast(l.ordered_at as date) as purchase_date,
        max(l.ordered_at) as purchased_at
    from {{ ref('int_order_lines_priced') }} as l
    where l.is_purchase = 1 and l.replenishment_days is not null
    group by l.customer_id, l.product_id, cast(l.ordered_at as date)
),

gaps as (
    select
        *,
        {{ dbt.datediff(
            "lag(purchase_date) over (partition by customer_id, product_id order by purchase_date)",
            "purchase_date", "day") }} as gap_days
    from purchases
),

per_product as (
    select
        customer_id,
        product_id,
        max(category) as category,
        max(catalog_days) as catalog_days,
        max(purchased_at) as last_purchased_at,
        count(*) as purchases_count,
        count(gap_days) as gaps_count,
        {{ median('gap_days') }} as median_gap_days
    from gaps
    group by customer_id, product_id
),

intervals as (
    select
        p.*,
        case when p.gaps_count >= {{ r['min_gaps'] }} then 'customer' else 'catalog' end
            as interval_source,
        case
            when p.gaps_count >= {{ r['min_gaps'] }}
                then cast(round(p.median_gap_days) as integer)
            else cast(p.catalog_days as integer)
        end as interval_days,
        coalesce(c.time_zone, d.default_time_zone, 'UTC') as time_zone
    from per_product as p
    left join {{ ref('stg_raw__customers') }} as c on p.customer_id = c.customer_id
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
    {{ dbt.concat(["customer_id", "'|'", "product_id"]) }} as customer_product_key,
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
