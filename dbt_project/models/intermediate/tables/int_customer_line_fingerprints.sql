-- Per customer: how many order lines they have up to as_of, the newest line load and the
-- newest load of a product they bought. The customer tables kept per customer compare
-- against it to find whom to compute again (macros/incremental_by_key.sql); one pass over
-- the lines serves them all.
select *
from {{ fingerprints_of(ref('int_order_lines_accumulated'), 'customer_id', catalog=true) }} as f
