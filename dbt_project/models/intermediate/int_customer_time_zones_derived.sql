-- Every zone a customer may be in, from the best source that knows: the profile's zone; else
-- the zones of the state or province (seeds/region_time_zones.csv); else the zones that
-- libphonenumber gives the number's longest known prefix (seeds/phone_prefix_time_zones.csv);
-- else the country's main zone. Several rows for one customer: the send window must be open
-- in all of them (Florida's panhandle, an Alaskan or Australian mobile number).
with customers as (
    select customer_id, phone_e164, country, region, time_zone
    from {{ ref('stg_raw__customers') }}
    where created_at <= {{ as_of() }}
),

by_profile as (
    select customer_id, time_zone, 'profile' as time_zone_source, 1 as precedence
    from customers
    where time_zone is not null
),

by_region as (
    select c.customer_id, r.time_zone, 'region' as time_zone_source, 2 as precedence
    from customers as c
    inner join {{ ref('region_time_zones') }} as r
        on c.country = r.country and upper(c.region) = r.region
    where c.time_zone is null
),

prefix_lengths as (
    {% for n in range(1, 10) -%}
    select {{ n }} as n {% if not loop.last %}union all {% endif %}
    {% endfor %}
),

phone_matches as (
    select c.customer_id, p.time_zone, l.n
    from customers as c
    cross join prefix_lengths as l
    inner join {{ ref('phone_prefix_time_zones') }} as p
        on p.prefix = substring(c.phone_e164, 2, l.n)
    where c.time_zone is null
        and c.customer_id not in (select customer_id from by_region)
),

by_phone as (
    select customer_id, time_zone, 'phone' as time_zone_source, 3 as precedence
    from (
        select *, max(n) over (partition by customer_id) as longest
        from phone_matches
    ) as m
    where n = longest
),

by_country as (
    select
        c.customer_id,
        coalesce(d.default_time_zone, 'UTC') as time_zone,
        case when d.default_time_zone is null then 'unknown' else 'country_default' end
            as time_zone_source,
        4 as precedence
    from customers as c
    left join {{ ref('country_defaults') }} as d on c.country = d.country
),

candidates as (
    select * from by_profile
    union all select * from by_region
    union all select * from by_phone
    union all select * from by_country
),

ranked as (
    select *, min(precedence) over (partition by customer_id) as best
    from candidates
)

select distinct customer_id, time_zone, time_zone_source
from ranked
where precedence = best
