-- One row per customer known at as_of: profile, order history, lifecycle stage, loyalty,
-- RFM, top category, SMS consent and the last tap on a link in an SMS. Rules come from vars and seeds (dbt_project.yml).
{%- set lc = var('lifecycle') %}
{%- set loyalty = var('loyalty') %}
{%- set window_start = dbt.dateadd('day', -loyalty['window_days'], as_of()) %}
with customers as (
    select * from {{ ref('int_customers_as_of') }}
    where created_at <= {{ as_of() }}
),

trailing_window as (
    -- revenue of the orders whose first purchase line falls in the trailing loyalty window
    select customer_id, sum(net_revenue) as trailing_revenue
    from (
        select customer_id, order_id, sum(net_revenue) as net_revenue
        from {{ ref('int_order_lines_accumulated') }}
        where status = 'completed'
        group by customer_id, order_id
        having min(ordered_at) > {{ window_start }}
    ) as orders
    group by customer_id
),

history as (
    select
        c.customer_id,
        o.first_order_at,
        o.last_order_at,
        coalesce(o.orders_count, 0) as orders_count,
        coalesce(o.lifetime_revenue, 0) as lifetime_revenue,
        coalesce(w.trailing_revenue, 0) as trailing_revenue,
        case
            when o.gaps_count >= 2 then o.median_gap_days
            else {{ lc['default_interval_days'] }}
        end as typical_gap_days,
        {{ dbt.datediff('o.last_order_at', as_of(), 'day') }} as days_since_last_order,
        {{ dbt.datediff('o.first_order_at', as_of(), 'day') }} as days_since_first_order
    from customers as c
    left join {{ ref('int_customer_orders_summarised') }} as o
        on c.customer_id = o.customer_id
    left join trailing_window as w
        on c.customer_id = w.customer_id
),

staged as (
    select
        *,
        case
            when orders_count = 0 then 'prospect'
            when days_since_last_order > {{ lc['churned_days'] }} then 'churned'
            when days_since_last_order > {{ lc['lapsed_multiplier'] }} * typical_gap_days
                then 'lapsed'
            when days_since_last_order > {{ lc['at_risk_multiplier'] }} * typical_gap_days
                then 'at_risk'
            when days_since_first_order <= {{ lc['new_days'] }} then 'new'
            else 'active'
        end as lifecycle_stage,
        cast(floor(trailing_revenue * {{ loyalty['points_per_unit'] }}) as bigint)
            as loyalty_points
    from history
),

tiered as (
    select
        s.customer_id,
        t.tier,
        row_number() over (partition by s.customer_id order by t.min_points desc) as tier_order
    from staged as s
    inner join {{ ref('loyalty_tiers') }} as t
        on s.loyalty_points >= t.min_points
),

scored as (
    -- quintiles among customers with orders; ties broken by id so every engine agrees
    select
        customer_id,
        cast(ntile(5) over (order by days_since_last_order desc, customer_id) as bigint)
            as rfm_recency_score,
        cast(ntile(5) over (order by orders_count, customer_id) as bigint)
            as rfm_frequency_score,
        cast(ntile(5) over (order by lifetime_revenue, customer_id) as bigint)
            as rfm_monetary_score
    from staged
    where orders_count > 0
),

segmented as (
    select
        s.customer_id,
        g.rfm_segment,
        row_number() over (partition by s.customer_id order by g.priority) as segment_order
    from scored as s
    inner join {{ ref('rfm_segments') }} as g
        on s.rfm_recency_score between g.r_min and g.r_max
        and s.rfm_frequency_score between g.f_min and g.f_max
        and s.rfm_monetary_score between g.m_min and g.m_max
),

derived_zones as (
    -- customers without a zone in their profile: the first derived zone by name stands for
    -- the customer (local dates, messages); the send window checks every one of them
    select
        customer_id,
        min(time_zone) as time_zone,
        min(time_zone_source) as time_zone_source
    from {{ ref('int_customer_time_zones_derived') }}
    where time_zone_source <> 'profile'
    group by customer_id
),

sms_clicks as (
    -- the last tap on a link in one of our texts (ours or as the shop tracked it)
    select customer_id, max(occurred_at) as last_sms_click_at
    from {{ ref('fct_events') }}
    where event_type = 'sms_click' and occurred_at <= {{ as_of() }}
    group by customer_id
),

consent as (
    select
        customer_id,
        max(case when channel = 'sms' and category = 'marketing' then status end)
            as sms_marketing_status,
        max(case when channel = 'sms' and category = 'transactional' then status end)
            as sms_transactional_status
    from {{ ref('customer_consent') }}
    group by customer_id
)

select
    c.customer_id,
    c.phone_e164,
    c.country,
    c.region,
    coalesce(c.time_zone, z.time_zone) as time_zone,
    case when c.time_zone is not null then 'profile' else z.time_zone_source end
        as time_zone_source,
    coalesce(c.language, d.default_language, 'en') as language,
    c.first_name,
    c.created_at,
    s.first_order_at,
    s.last_order_at,
    s.orders_count,
    s.lifetime_revenue,
    s.lifecycle_stage,
    t.tier as loyalty_tier,
    s.loyalty_points,
    r.rfm_recency_score,
    r.rfm_frequency_score,
    r.rfm_monetary_score,
    g.rfm_segment,
    a.category as top_category,
    coalesce(k.sms_marketing_status, 'never') as sms_marketing_status,
    coalesce(k.sms_transactional_status, 'never') as sms_transactional_status,
    l.last_sms_click_at,
    {{ as_of() }} as as_of
from customers as c
inner join staged as s on c.customer_id = s.customer_id
left join tiered as t on c.customer_id = t.customer_id and t.tier_order = 1
left join scored as r on c.customer_id = r.customer_id
left join segmented as g on c.customer_id = g.customer_id and g.segment_order = 1
left join {{ ref('customer_category_affinity') }} as a
    on c.customer_id = a.customer_id and a.category_rank = 1
left join consent as k on c.customer_id = k.customer_id
left join sms_clicks as l on c.customer_id = l.customer_id
left join derived_zones as z on c.customer_id = z.customer_id
left join {{ ref('country_defaults') }} as d on c.country = d.country
