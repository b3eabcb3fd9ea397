-- Per customer: how many order lines they have up to as_of, the newest line load and the
-- newest load of a product they bought. The customer tables kept per customer compare
-- against it to find whom to compute again (macros/incremental_by_key.sql); one pass over
-- the lines serves them all.
{{ config(materialized='table') }}
select *
from {{ fingerprints_of(ref('fct_order_lines'), 'customer_id', catalog=true) }} as f
