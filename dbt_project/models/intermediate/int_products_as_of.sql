-- One row per product: the catalog version (name, category, cycle, price) known at as_of.
{{ version_at_as_of(ref('stg_raw__products'), 'product_id',
    ['product_id', 'product_name', 'category', 'replenishment_days', 'price', 'currency',
     'launched_at']) }}
