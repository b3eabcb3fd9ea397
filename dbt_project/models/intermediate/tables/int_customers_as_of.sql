-- One row per customer: the profile version known at as_of. A phone number changed by then
-- is the number texts go to, and its SMS consent is its own (customer_consent).
-- A table, not a view: five models join it, and a view over a union gives the planner no
-- row counts to order their joins by.
{{ version_at_as_of(ref('stg_raw__customers'), 'customer_id',
    ['customer_id', 'first_name', 'phone_e164', 'country', 'region', 'time_zone', 'language',
     'created_at']) }}
