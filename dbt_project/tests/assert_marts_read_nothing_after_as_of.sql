-- Fails (returns rows) if any mart holds a fact stamped after the run's as_of: a backfill for
-- an old date must see exactly what a run on that date saw.
with stamped as (
    select 'fct_orders' as mart, ordered_at as stamped_at from {{ ref('fct_orders') }}
    union all
    select 'fct_order_lines', ordered_at from {{ ref('fct_order_lines') }}
    union all
    select 'fct_events', occurred_at from {{ ref('fct_events') }}
    union all
    select 'fct_consent_events', occurred_at from {{ ref('fct_consent_events') }}
    union all
    select 'customer_consent', since from {{ ref('customer_consent') }}
    union all
    select 'dim_customers.created_at', created_at from {{ ref('dim_customers') }}
    union all
    select 'dim_customers.last_order_at', last_order_at from {{ ref('dim_customers') }}
    union all
    select 'customer_replenishment', last_purchased_at from {{ ref('customer_replenishment') }}
)

select mart, count(*) as rows_after_as_of, max(stamped_at) as latest
from stamped
where stamped_at > {{ as_of() }}
group by mart
