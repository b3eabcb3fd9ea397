-- What each customer buys, by category, from purchases only (never from browsing); the
-- per-customer history is kept in int_customer_category_purchases.
select
    customer_category_key,
    customer_id,
    category,
    purchases,
    revenue,
    share,
    category_rank
from {{ ref('int_customer_category_purchases') }}
