-- Every version of every product (SCD2): a price or category change lands again with a
-- later updated_at. int_products_as_of picks the one known at as_of.
select
    {{ dbt.concat(["product_id", "'|'", "coalesce(cast(updated_at as " ~ dbt.type_string() ~ "), '')"]) }}
        as product_version_key,
    product_id,
    name as product_name,
    category,
    replenishment_days,
    price,
    currency,
    launched_at,
    updated_at,
    {{ scd2_span('product_id', 'launched_at') }},
    partition_date,
    loaded_at
from {{ source('raw', 'products') }}
