-- Every version of every customer (SCD2): a profile changed at the shop (phone, region,
-- name) lands again with a later updated_at. int_customers_as_of picks the one known at
-- as_of.
select
    {{ dbt.concat(["customer_id", "'|'", "coalesce(cast(updated_at as " ~ dbt.type_string() ~ "), '')"]) }}
        as customer_version_key,
    customer_id,
    first_name,
    phone_e164,
    country,
    region,
    time_zone,
    language,
    created_at,
    updated_at,
    {{ scd2_span('customer_id', 'created_at') }},
    partition_date,
    loaded_at
from {{ source('raw', 'customers') }}
