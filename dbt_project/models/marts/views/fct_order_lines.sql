-- One row per order line up to as_of; cancelled and refunded lines kept, flagged. A view:
-- the rows are stored, by landing day, in int_order_lines_accumulated.
select * from {{ ref('int_order_lines_accumulated') }}
