-- One row per order line: the version known at as_of, so a refund or cancellation counts
-- from the moment it happened (its updated_at) and not before. The line stays on the
-- landing day of its sale (partition_date) for the incremental facts.
{{ version_at_as_of(ref('stg_raw__order_lines'), 'order_line_id',
    ['order_line_id', 'order_id', 'order_line_no', 'customer_id', 'product_id', 'quantity',
     'unit_price', 'discount_amount', 'currency', 'status', 'channel', 'ordered_at']) }}
