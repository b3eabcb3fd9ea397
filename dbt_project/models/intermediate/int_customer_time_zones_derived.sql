-- Every zone a customer may be in, from the best source that knows: the profile's zone; else
-- the zones of the state or province (seeds/region_time_zones.csv); else the zones that
-- libphonenumber gives the number's longest known prefix (seeds/phone_prefix_time_zones.csv);
-- else the country's main zone. Several rows for one customer: the send window must be open
-- in all of them (Florida's panhandle, an Alaskan or Australian mobile number).
with customers as (
    select customer_id, phone_e164, country, region, time_zone
    from {{ ref('int_customers_as_of') }}
    where created_at <= {{ as_of() }}
),

without_profile_zone as (
    select * from customers where time_zone is null
),

by_region as (
    select c.customer_id, r.time_zone, 'region' as time_zone_source
    from without_profile_zone as c
    inner join {{ ref('region_time_zones') }} as r
        on c.country = r.country and upper(c.region) = r.region
),

prefix_lengths as (
    {% for n in range(1, 10) -%}
    select {{ n }} as n {% if not loop.last %}union all {% endif %}
    {% endfor %}
),

phone_matches as (
    select c.customer_id, p.time_zone, l.n
    from without_profile_zone as c
    cross join prefix_lengths as l
    inner join {{ ref('phone_prefix_time_zones') }} as p
        on p.prefix = substring(c.phone_e164, 2, l.n)
    where c.customer_id not in (select customer_id from by_region)
),

by_phone as (
    select customer_id, time_zone, 'phone' as time_zone_source
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
            as time_zone_source
    from without_profile_zone as c
    left join {{ ref('country_defaults') }} as d on c.country = d.country
    where c.customer_id not in (select customer_id from by_region)
        and c.customer_id not in (select customer_id from by_phone)
)

-- each customer takes exactly one branch: the first source that knows
select customer_id, time_zone, 'profile' as time_zone_source
from customers
where time_zone is not null
union all
select distinct customer_id, time_zone, time_zone_source from by_region
union all
select distinct customer_id, time_zone, time_zone_source from by_phone
union all
select customer_id, time_zone, time_zone_source from by_country
