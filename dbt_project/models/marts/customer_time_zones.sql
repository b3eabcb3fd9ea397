-- The zones a customer may be in at as_of, one row each (see
-- int_customer_time_zones_derived): the send jobs open a customer's window only when it is
-- open in every one of them.
select
    {{ dbt.concat(["customer_id", "'|'", "time_zone"]) }} as customer_zone_key,
    customer_id,
    time_zone,
    time_zone_source,
    {{ as_of() }} as as_of
from {{ ref('int_customer_time_zones_derived') }}
